// The top level: loads config and session, shows the sign-in screen or the chat, and the dev
// login banner above either when the server has dev login on.
//
// The Zero client exists only while someone is signed in. It is created without `auth`: the
// session token sits in an HttpOnly cookie that the browser sends to zero-cache, which forwards
// it to the app's mutate and query endpoints, so no script on this page ever holds it.
// `ZeroProvider` is keyed by the user, so signing out and in as someone else starts a fresh
// client (and its own local store).
import { ZeroProvider } from '@rocicorp/zero/react';
import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import { getConfig, getSession, signOut, UnreachableError, type Config, type Session } from './api';
import { AuthScreen, DevLoginBanner } from './AuthScreen';
import { UNREACHABLE } from './authRules';
import { Chat } from './Chat';
import { mutators } from './mutators';
import { schema } from './schema';

type Boot =
  | { state: 'loading' }
  | { state: 'failed'; message: string }
  | { state: 'ready'; config: Config; session: Session | null };

export function App() {
  const [boot, setBoot] = useState<Boot>({ state: 'loading' });

  useEffect(() => {
    let cancelled = false;
    Promise.all([getConfig(), getSession()])
      .then(([config, session]) => {
        if (!cancelled) setBoot({ state: 'ready', config, session });
      })
      .catch((e: unknown) => {
        const message = e instanceof UnreachableError ? UNREACHABLE : `Could not load ZRocket: ${e instanceof Error ? e.message : String(e)}`;
        if (!cancelled) setBoot({ state: 'failed', message });
      });
    return () => {
      cancelled = true;
    };
  }, []);

  const setSession = useCallback((session: Session | null) => {
    setBoot((b) => (b.state === 'ready' ? { ...b, session } : b));
  }, []);

  // The server revokes the session and clears the cookie; if it cannot be reached the cookie
  // may live on, so say so rather than pretend.
  const onSignOut = useCallback(async (): Promise<string | null> => {
    try {
      await signOut();
    } catch (e) {
      return e instanceof UnreachableError ? UNREACHABLE : `Could not sign out: ${e instanceof Error ? e.message : String(e)}`;
    }
    setSession(null);
    return null;
  }, [setSession]);

  // After a 401 through zero-cache the cookie may still hold a live session (e.g. the server
  // restarted); ask the server again, and fall back to the sign-in screen if it has none.
  const refreshSession = useCallback(async (): Promise<Session | null> => {
    const session = await getSession();
    setSession(session);
    return session;
  }, [setSession]);

  // ZeroProvider recreates the Zero client whenever a prop changes identity, so the context
  // object must stay the same object for the same user.
  const userID = boot.state === 'ready' ? boot.session?.user._id : undefined;
  const context = useMemo(() => (userID ? { userID } : undefined), [userID]);

  let screen: ReactNode;
  if (boot.state === 'loading') {
    screen = (
      <div className="centered" data-testid="loading">
        Loading…
      </div>
    );
  } else if (boot.state === 'failed') {
    screen = (
      <div className="centered error" data-testid="boot-error">
        {boot.message}
      </div>
    );
  } else if (!boot.session) {
    screen = <AuthScreen config={boot.config} onSignedIn={setSession} />;
  } else {
    screen = (
      <ZeroProvider
        key={userID}
        cacheURL={boot.config.zeroCacheUrl}
        userID={boot.session.user._id}
        context={context}
        schema={schema}
        mutators={mutators}
      >
        <Chat me={boot.session.user} onSignOut={onSignOut} refreshSession={refreshSession} />
      </ZeroProvider>
    );
  }
  return (
    <div className="shell">
      {boot.state === 'ready' && boot.config.devLogin && <DevLoginBanner />}
      {screen}
    </div>
  );
}
