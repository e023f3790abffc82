// The sign-in rules the forms check before sending, and the words for every way a sign-in
// request can fail.
//
// The server checks the same rules (and is the authority); checking here too lets the form say
// what is wrong at the field while the user types, without a round trip. Kept free of React so
// the unit tests can pin every message.
import { ApiError, UnreachableError } from './api';

export const USERNAME_MIN = 3;
export const USERNAME_MAX = 32;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 256;
export const NAME_MAX = 100;

const USERNAME_CHARS = /^[a-zA-Z0-9_.-]*$/;

/** Length in characters as a person counts them (code points, not UTF-16 units). */
function chars(s: string): number {
  return [...s].length;
}

export function checkUsername(username: string): string | null {
  if (username === '') return 'Enter a username.';
  if (!USERNAME_CHARS.test(username)) return 'Use only letters, digits, and _ . -';
  const n = chars(username);
  if (n < USERNAME_MIN) return `At least ${USERNAME_MIN} characters.`;
  if (n > USERNAME_MAX) return `At most ${USERNAME_MAX} characters.`;
  return null;
}

export function checkName(name: string): string | null {
  if (name.trim() === '') return 'Enter the name others will see.';
  if (chars(name.trim()) > NAME_MAX) return `At most ${NAME_MAX} characters.`;
  return null;
}

/** A password being chosen (sign-up, change): the length rules apply. */
export function checkNewPassword(password: string): string | null {
  if (password === '') return 'Choose a password.';
  const n = chars(password);
  if (n < PASSWORD_MIN) return `At least ${PASSWORD_MIN} characters.`;
  if (n > PASSWORD_MAX) return `At most ${PASSWORD_MAX} characters.`;
  return null;
}

export function checkConfirm(password: string, confirm: string): string | null {
  if (confirm === '') return 'Type the password again.';
  return confirm === password ? null : 'The passwords do not match.';
}

export type FieldErrors<F extends string> = Partial<Record<F, string>>;

/** Drops the fields without a problem; `{}` means the form may be sent. */
function only<F extends string>(all: Record<F, string | null>): FieldErrors<F> {
  const out: FieldErrors<F> = {};
  for (const [k, v] of Object.entries(all) as [F, string | null][]) {
    if (v) out[k] = v;
  }
  return out;
}

export type SignUpField = 'username' | 'name' | 'password' | 'confirm';
export function checkSignUp(f: Record<SignUpField, string>): FieldErrors<SignUpField> {
  return only({
    username: checkUsername(f.username),
    name: checkName(f.name),
    password: checkNewPassword(f.password),
    confirm: checkConfirm(f.password, f.confirm),
  });
}

export type SignInField = 'username' | 'password';
/** Sign-in checks only presence: an old account may predate today's rules. */
export function checkSignIn(f: Record<SignInField, string>): FieldErrors<SignInField> {
  return only({
    username: f.username.trim() === '' ? 'Enter your username.' : null,
    password: f.password === '' ? 'Enter your password.' : null,
  });
}

export type PasswordField = 'current' | 'next' | 'confirm';
export function checkPasswordChange(f: Record<PasswordField, string>): FieldErrors<PasswordField> {
  return only({
    current: f.current === '' ? 'Enter your current password.' : null,
    next:
      checkNewPassword(f.next) ??
      (f.next !== '' && f.next === f.current ? 'Pick a password different from the current one.' : null),
    confirm: checkConfirm(f.next, f.confirm),
  });
}

export const UNREACHABLE = "Can't reach the ZRocket server. Check your connection and try again.";

export function rateLimitMessage(retryAfterSecs: number | undefined): string {
  if (retryAfterSecs === undefined) return 'Too many attempts — try again later.';
  return `Too many attempts — try again in ${Math.max(1, Math.ceil(retryAfterSecs))} s`;
}

/** Where an error belongs in a form (a field, or the form as a whole) and what it says. */
export type Problem<F extends string> = { field?: F; message: string; retryAfterSecs?: number };

export type FormKind = 'signin' | 'signup' | 'dev' | 'password';

/**
 * Puts a failed request into words for the given form. The server's `field` (username, name,
 * password) is mapped onto the form's own fields, so the message appears where the user typed.
 */
export function describeError(kind: 'signup', e: unknown): Problem<SignUpField>;
export function describeError(kind: 'signin', e: unknown): Problem<SignInField>;
export function describeError(kind: 'dev', e: unknown): Problem<'username'>;
export function describeError(kind: 'password', e: unknown): Problem<PasswordField>;
export function describeError(kind: FormKind, e: unknown): Problem<string> {
  if (e instanceof UnreachableError) return { message: UNREACHABLE };
  if (!(e instanceof ApiError)) {
    return { message: `Something went wrong: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (e.status === 429) {
    return { message: rateLimitMessage(e.retryAfterSecs), retryAfterSecs: e.retryAfterSecs };
  }
  switch (kind) {
    case 'signin':
      if (e.status === 401) return { message: 'Wrong username or password.' };
      break;
    case 'signup':
      if (e.status === 409) return { field: 'username', message: 'That username is taken. Try another one.' };
      if (e.status === 400 && (e.field === 'username' || e.field === 'name' || e.field === 'password')) {
        return { field: e.field, message: sentence(e.message) };
      }
      break;
    case 'dev':
      // 404 is both "dev login is off" and "no such user"; the server's words tell which.
      if (e.status === 400 && e.field === 'username') return { field: 'username', message: sentence(e.message) };
      break;
    case 'password':
      // A wrong current password is a 400 at `currentPassword`; a 401 means the session is gone.
      if (e.status === 401) return { message: 'Your session has ended. Sign in again to change your password.' };
      if (e.status === 400) {
        if (e.field === 'currentPassword') return { field: 'current', message: 'That is not your current password.' };
        if (e.field === 'newPassword' || e.field === 'password') return { field: 'next', message: sentence(e.message) };
      }
      break;
  }
  if (e.status >= 500) return { message: `The server had a problem (HTTP ${e.status}). Try again in a moment.` };
  return { message: sentence(e.message) };
}

/** The server's messages are lower-case fragments ("wrong username or password"). */
export function sentence(s: string): string {
  const t = s.trim();
  if (t === '') return 'Something went wrong.';
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}
