// The REST calls the UI makes to the zrocket server: config, sign-up, sign-in, dev login,
// session, sign-out and password change.
//
// Everything else (reads and writes of chat data) goes through Zero. The session lives in an
// HttpOnly cookie that no script here can read: the server never returns the token, the Zero
// client is created without `auth`, and zero-cache forwards the browser's cookie to the app's
// mutate and query endpoints.

export type SessionUser = { _id: string; username: string; name: string };
export type Session = { user: SessionUser };
export type OidcConfig = { issuer: string; audience: string };
export type Config = { zeroCacheUrl: string; devLogin: boolean; oidc: OidcConfig | null };

/** The form fields the server may blame in a 400/409 (`{error, field}`). */
export type AuthField = 'username' | 'name' | 'password';

/** An HTTP error from the zrocket API, with what the server said about it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The input the server blamed, when it named one. */
    readonly field?: string,
    /** For 429: how long the server asks us to wait. */
    readonly retryAfterSecs?: number,
  ) {
    super(message);
  }
}

/** The request never got an HTTP answer (server down, network gone, CORS, DNS). */
export class UnreachableError extends Error {}

/** The parts of an error body this UI understands; anything else is ignored. */
export function parseErrorBody(json: unknown): { error?: string; field?: string; retryAfterSecs?: number } {
  if (!json || typeof json !== 'object') return {};
  const o = json as Record<string, unknown>;
  return {
    error: typeof o.error === 'string' ? o.error : undefined,
    field: typeof o.field === 'string' ? o.field : undefined,
    retryAfterSecs:
      typeof o.retryAfterSecs === 'number' && Number.isFinite(o.retryAfterSecs) && o.retryAfterSecs >= 0
        ? o.retryAfterSecs
        : undefined,
  };
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new UnreachableError(e instanceof Error ? e.message : String(e));
  }
  const text = await res.text();
  let json: unknown = undefined;
  if (text !== '') {
    try {
      json = JSON.parse(text);
    } catch {
      // A non-JSON body (e.g. a proxy's error page) is reported by status below.
    }
  }
  if (!res.ok) {
    const parsed = parseErrorBody(json);
    // A proxy in front of a stopped server answers 502/503/504 with its own page.
    if ([502, 503, 504].includes(res.status) && parsed.error === undefined) {
      throw new UnreachableError(`HTTP ${res.status}`);
    }
    throw new ApiError(
      res.status,
      parsed.error ?? `${method} ${path} failed with HTTP ${res.status}`,
      parsed.field,
      parsed.retryAfterSecs,
    );
  }
  return json as T;
}

export async function getConfig(): Promise<Config> {
  const c = await request<Partial<Config>>('GET', '/api/config');
  // Older servers send only zeroCacheUrl: no dev login flag means none is on.
  return {
    zeroCacheUrl: String(c.zeroCacheUrl ?? ''),
    devLogin: c.devLogin === true,
    oidc: c.oidc && typeof c.oidc === 'object' ? c.oidc : null,
  };
}

/** The current session, or null when not signed in (401). */
export async function getSession(): Promise<Session | null> {
  try {
    return await request<Session>('GET', '/api/auth/session');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export function signUp(input: { username: string; name: string; password: string }): Promise<Session> {
  return request<Session>('POST', '/api/auth/signup', input);
}

export function signIn(input: { username: string; password: string }): Promise<Session> {
  return request<Session>('POST', '/api/auth/login', input);
}

/** Password-less sign-in; the server answers it only when it runs with DEV_LOGIN=true. */
export function devLogin(username: string): Promise<Session> {
  return request<Session>('POST', '/api/auth/dev-login', { username });
}

export async function signOut(): Promise<void> {
  await request<unknown>('POST', '/api/auth/logout');
}

export async function changePassword(input: { currentPassword: string; newPassword: string }): Promise<void> {
  await request<unknown>('POST', '/api/auth/password', input);
}
