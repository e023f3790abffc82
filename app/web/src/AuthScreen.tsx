// The signed-out screen: sign in or create an account (two tabs, and a link under each form to
// the other), plus the password-less dev login when the server has it on, and a note when the
// server also accepts an external identity provider's tokens.
import { useState } from 'react';
import { devLogin, signIn, signUp, type Config, type Session } from './api';
import {
  checkSignIn,
  checkSignUp,
  checkUsername,
  describeError,
  PASSWORD_MIN,
  USERNAME_MAX,
  USERNAME_MIN,
} from './authRules';
import { Field } from './Field';
import { useForm } from './useForm';

type Tab = 'signin' | 'signup';

export function AuthScreen({ config, onSignedIn }: { config: Config; onSignedIn: (s: Session) => void }) {
  const [tab, setTab] = useState<Tab>('signin');

  return (
    <main className="auth" data-testid="auth-screen" data-tab={tab}>
      <div className="auth-card">
        <h1>ZRocket</h1>
        <p className="muted">A chat on Zero and MongoDB.</p>
        <div className="tabs" role="tablist" aria-label="Sign in or create an account">
          <button
            type="button"
            role="tab"
            className={tab === 'signin' ? 'tab active' : 'tab'}
            aria-selected={tab === 'signin'}
            data-testid="auth-tab-signin"
            onClick={() => setTab('signin')}
          >
            Sign in
          </button>
          <button
            type="button"
            role="tab"
            className={tab === 'signup' ? 'tab active' : 'tab'}
            aria-selected={tab === 'signup'}
            data-testid="auth-tab-signup"
            onClick={() => setTab('signup')}
          >
            Create account
          </button>
        </div>
        {tab === 'signin' ? (
          <SignInForm onSignedIn={onSignedIn} onSwitch={() => setTab('signup')} />
        ) : (
          <SignUpForm onSignedIn={onSignedIn} onSwitch={() => setTab('signin')} />
        )}
        {config.oidc && (
          <p className="note small" data-testid="oidc-note">
            This server also accepts sign-in through an external identity provider ({config.oidc.issuer}). Apps
            that use it send its ID tokens to the API; this page signs in with a ZRocket password.
          </p>
        )}
      </div>
      {config.devLogin && <DevLoginForm onSignedIn={onSignedIn} />}
    </main>
  );
}

function FormError({ testId, message }: { testId: string; message: string | null }) {
  if (!message) return null;
  return (
    <p className="form-error" role="alert" data-testid={testId}>
      {message}
    </p>
  );
}

function SignInForm({ onSignedIn, onSwitch }: { onSignedIn: (s: Session) => void; onSwitch: () => void }) {
  const form = useForm({ username: '', password: '' }, checkSignIn);
  const submit = form.onSubmit(async (v) => {
    try {
      onSignedIn(await signIn({ username: v.username.trim(), password: v.password }));
      return null;
    } catch (e) {
      return describeError('signin', e);
    }
  });
  return (
    <form className="auth-form" data-testid="signin-form" onSubmit={submit} noValidate>
      <Field
        label="Username"
        testId="signin-username"
        autoComplete="username"
        autoCapitalize="none"
        spellCheck={false}
        autoFocus
        {...form.field('username')}
      />
      <Field label="Password" testId="signin-password" type="password" autoComplete="current-password" {...form.field('password')} />
      <FormError testId="signin-error" message={form.formError} />
      <button type="submit" className="primary" data-testid="signin-submit" disabled={form.busy}>
        {form.busy ? 'Signing in…' : 'Sign in'}
      </button>
      <p className="switch small">
        New here?{' '}
        <button type="button" className="link" data-testid="goto-signup" onClick={onSwitch}>
          Create an account
        </button>
      </p>
    </form>
  );
}

function SignUpForm({ onSignedIn, onSwitch }: { onSignedIn: (s: Session) => void; onSwitch: () => void }) {
  const form = useForm({ username: '', name: '', password: '', confirm: '' }, checkSignUp);
  const submit = form.onSubmit(async (v) => {
    try {
      onSignedIn(await signUp({ username: v.username, name: v.name.trim(), password: v.password }));
      return null;
    } catch (e) {
      return describeError('signup', e);
    }
  });
  return (
    <form className="auth-form" data-testid="signup-form" onSubmit={submit} noValidate>
      <Field
        label="Username"
        testId="signup-username"
        autoComplete="username"
        autoCapitalize="none"
        spellCheck={false}
        autoFocus
        maxLength={USERNAME_MAX * 2}
        hint={`${USERNAME_MIN}–${USERNAME_MAX} letters, digits, _ . or -`}
        {...form.field('username')}
      />
      <Field label="Display name" testId="signup-name" autoComplete="name" hint="What others see in the chat" {...form.field('name')} />
      <Field
        label="Password"
        testId="signup-password"
        type="password"
        autoComplete="new-password"
        hint={`At least ${PASSWORD_MIN} characters`}
        {...form.field('password')}
      />
      <Field label="Confirm password" testId="signup-confirm" type="password" autoComplete="new-password" {...form.field('confirm')} />
      <FormError testId="signup-error" message={form.formError} />
      <button type="submit" className="primary" data-testid="signup-submit" disabled={form.busy}>
        {form.busy ? 'Creating account…' : 'Create account'}
      </button>
      <p className="switch small">
        Already have an account?{' '}
        <button type="button" className="link" data-testid="goto-signin" onClick={onSwitch}>
          Sign in
        </button>
      </p>
    </form>
  );
}

function checkDev(v: { username: string }) {
  const problem = checkUsername(v.username.trim());
  return problem ? { username: problem } : {};
}

/** Only rendered when the server says dev login is on: sign in as anyone, by name. */
function DevLoginForm({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const form = useForm({ username: '' }, checkDev);
  const submit = form.onSubmit(async (v) => {
    try {
      onSignedIn(await devLogin(v.username.trim()));
      return null;
    } catch (e) {
      return describeError('dev', e);
    }
  });
  return (
    <form className="auth-card dev-login" data-testid="dev-login-form" onSubmit={submit} noValidate>
      <h2>Dev login</h2>
      <p className="muted small">No password: signs in as the user with this name, e.g. the seeded alice, bob, charlie or diana.</p>
      <div className="dev-login-row">
        <Field
          label="Username"
          testId="dev-login-username"
          autoComplete="off"
          autoCapitalize="none"
          spellCheck={false}
          {...form.field('username')}
        />
        <button type="submit" data-testid="dev-login-submit" disabled={form.busy}>
          {form.busy ? 'Signing in…' : 'Sign in as'}
        </button>
      </div>
      <FormError testId="dev-login-error" message={form.formError} />
    </form>
  );
}

export function DevLoginBanner() {
  return (
    <div className="dev-banner" role="status" data-testid="dev-login-banner">
      Dev login is on: anyone can sign in as anyone — local use only
    </div>
  );
}
