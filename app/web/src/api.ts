// The few REST calls the UI makes to the zrocket server: config, dev login, session, logout.
//
// Everything else (reads and writes of chat data) goes through Zero. The session cookie is
// HttpOnly, so the page learns its token from `/api/auth/session` and hands it to the Zero
// client as `auth`.

export type SessionUser = { _id: string; username: string; name: string };
export type Session = { user: SessionUser; token: string };
export type Config = { zeroCacheUrl: string };

/** An HTTP error from the zrocket API, carrying the server's `{error}` message when present. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
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
    const message =
      json && typeof json === 'object' && 'error' in json && typeof json.error === 'string'
        ? json.error
        : `${method} ${path} failed with HTTP ${res.status}`;
    throw new ApiError(res.status, message);
  }
  return json as T;
}

export function getConfig(): Promise<Config> {
  return request<Config>('GET', '/api/config');
}

/** The current session, or null when not logged in (401). */
export async function getSession(): Promise<Session | null> {
  try {
    return await request<Session>('GET', '/api/auth/session');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export function listLoginUsers(): Promise<SessionUser[]> {
  return request<SessionUser[]>('GET', '/api/auth/users');
}

export function login(username: string): Promise<Session> {
  return request<Session>('POST', '/api/auth/login', { username });
}

export async function logout(): Promise<void> {
  await request<unknown>('POST', '/api/auth/logout');
}
