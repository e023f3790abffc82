import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, getSession, parseErrorBody, signIn, signUp, UnreachableError } from './api';
import {
  checkName,
  checkNewPassword,
  checkPasswordChange,
  checkSignIn,
  checkSignUp,
  checkUsername,
  describeError,
  rateLimitMessage,
  sentence,
  UNREACHABLE,
} from './authRules';

describe('checkUsername', () => {
  it('accepts 3 to 32 letters, digits, _ . -', () => {
    expect(checkUsername('bob')).toBeNull();
    expect(checkUsername('a.b_c-D9')).toBeNull();
    expect(checkUsername('x'.repeat(32))).toBeNull();
  });
  it('names the broken rule', () => {
    expect(checkUsername('')).toBe('Enter a username.');
    expect(checkUsername('ab')).toBe('At least 3 characters.');
    expect(checkUsername('x'.repeat(33))).toBe('At most 32 characters.');
    expect(checkUsername('bob smith')).toBe('Use only letters, digits, and _ . -');
    expect(checkUsername('bøb')).toBe('Use only letters, digits, and _ . -');
  });
});

describe('passwords and names', () => {
  it('counts characters, not UTF-16 units', () => {
    expect(checkNewPassword('1234567')).toBe('At least 8 characters.');
    expect(checkNewPassword('12345678')).toBeNull();
    // 8 emoji are 16 UTF-16 units but 8 characters.
    expect(checkNewPassword('🚀'.repeat(8))).toBeNull();
    expect(checkNewPassword('🚀'.repeat(7))).toBe('At least 8 characters.');
    expect(checkNewPassword('x'.repeat(256))).toBeNull();
    expect(checkNewPassword('x'.repeat(257))).toBe('At most 256 characters.');
  });
  it('wants a display name that is not blank', () => {
    expect(checkName('  ')).toBe('Enter the name others will see.');
    expect(checkName('Bob Smith')).toBeNull();
  });
});

describe('form checks', () => {
  it('sign-up reports every bad field at once, including a mismatched confirmation', () => {
    expect(checkSignUp({ username: 'b', name: '', password: 'short', confirm: 'other' })).toEqual({
      username: 'At least 3 characters.',
      name: 'Enter the name others will see.',
      password: 'At least 8 characters.',
      confirm: 'The passwords do not match.',
    });
    expect(checkSignUp({ username: 'bob', name: 'Bob', password: 'password1', confirm: 'password1' })).toEqual({});
  });
  it('sign-in only wants both fields filled (old accounts may predate the rules)', () => {
    expect(checkSignIn({ username: 'ab', password: 'x' })).toEqual({});
    expect(checkSignIn({ username: ' ', password: '' })).toEqual({
      username: 'Enter your username.',
      password: 'Enter your password.',
    });
  });
  it('a new password must differ from the current one', () => {
    expect(checkPasswordChange({ current: 'password1', next: 'password1', confirm: 'password1' })).toEqual({
      next: 'Pick a password different from the current one.',
    });
  });
});

describe('describeError', () => {
  it('says a failed sign-in the same way for any 401', () => {
    expect(describeError('signin', new ApiError(401, 'wrong username or password'))).toEqual({
      message: 'Wrong username or password.',
    });
  });
  it('gives the rate-limit wait in seconds', () => {
    const p = describeError('signin', new ApiError(429, 'too many attempts', undefined, 299.2));
    expect(p.message).toBe('Too many attempts — try again in 300 s');
    expect(p.retryAfterSecs).toBe(299.2);
    expect(rateLimitMessage(undefined)).toBe('Too many attempts — try again later.');
    expect(rateLimitMessage(0.1)).toBe('Too many attempts — try again in 1 s');
  });
  it("puts the server's field errors at the field", () => {
    expect(describeError('signup', new ApiError(409, 'username taken', 'username'))).toEqual({
      field: 'username',
      message: 'That username is taken. Try another one.',
    });
    expect(describeError('signup', new ApiError(400, 'password must be 8 to 256 characters', 'password'))).toEqual({
      field: 'password',
      message: 'Password must be 8 to 256 characters.',
    });
    // A field this form does not have is a form-level message.
    expect(describeError('signup', new ApiError(400, 'bad body', 'other'))).toEqual({ message: 'Bad body.' });
  });
  it('maps a password change refusal to the field it is about', () => {
    expect(describeError('password', new ApiError(400, 'the current password is wrong', 'currentPassword'))).toEqual({
      field: 'current',
      message: 'That is not your current password.',
    });
    expect(describeError('password', new ApiError(400, 'too short', 'newPassword')).field).toBe('next');
    expect(describeError('password', new ApiError(401, 'not signed in')).field).toBeUndefined();
  });
  it('says when the server cannot be reached, or failed', () => {
    expect(describeError('signup', new UnreachableError('Failed to fetch'))).toEqual({ message: UNREACHABLE });
    expect(describeError('signin', new ApiError(500, 'boom')).message).toBe(
      'The server had a problem (HTTP 500). Try again in a moment.',
    );
    expect(describeError('dev', new ApiError(404, 'the dev login is off (DEV_LOGIN=true turns it on)')).message).toBe(
      'The dev login is off (DEV_LOGIN=true turns it on).',
    );
    expect(describeError('dev', new ApiError(404, 'no user named "zed"')).message).toBe('No user named "zed".');
  });
  it('sentence() capitalises and ends with a full stop once', () => {
    expect(sentence('wrong password')).toBe('Wrong password.');
    expect(sentence('Done!')).toBe('Done!');
    expect(sentence(' ')).toBe('Something went wrong.');
  });
});

describe('api', () => {
  afterEach(() => vi.unstubAllGlobals());

  const answer = (status: number, body: unknown) =>
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => new Response(body === undefined ? null : JSON.stringify(body), { status })),
    );

  it('parseErrorBody keeps only well-typed fields', () => {
    expect(parseErrorBody({ error: 'x', field: 'name', retryAfterSecs: 5 })).toEqual({
      error: 'x',
      field: 'name',
      retryAfterSecs: 5,
    });
    expect(parseErrorBody({ error: 1, field: null, retryAfterSecs: -1 })).toEqual({
      error: undefined,
      field: undefined,
      retryAfterSecs: undefined,
    });
    expect(parseErrorBody('nope')).toEqual({});
  });
  it("carries the server's field and wait into ApiError", async () => {
    answer(409, { error: 'username taken', field: 'username' });
    await expect(signUp({ username: 'bob', name: 'Bob', password: 'password1' })).rejects.toMatchObject({
      status: 409,
      field: 'username',
    });
    answer(429, { error: 'too many attempts', retryAfterSecs: 42 });
    await expect(signIn({ username: 'bob', password: 'x' })).rejects.toMatchObject({ status: 429, retryAfterSecs: 42 });
  });
  it('treats a network failure and a bare proxy 502 as unreachable', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => {
        throw new TypeError('Failed to fetch');
      }),
    );
    await expect(signIn({ username: 'bob', password: 'x' })).rejects.toBeInstanceOf(UnreachableError);
    vi.stubGlobal('fetch', vi.fn(async () => new Response('<html>Bad Gateway</html>', { status: 502 })));
    await expect(signIn({ username: 'bob', password: 'x' })).rejects.toBeInstanceOf(UnreachableError);
  });
  it('getSession is null on 401 and an error otherwise', async () => {
    answer(401, { error: 'not signed in' });
    await expect(getSession()).resolves.toBeNull();
    answer(500, { error: 'boom' });
    await expect(getSession()).rejects.toBeInstanceOf(ApiError);
  });
});
