// The top level: loads config and session, shows the login screen or the chat.
//
// The Zero client exists only while someone is logged in; `ZeroProvider` is keyed by the user, so
// logging out and in as someone else starts a fresh client with that user's token.
import { ZeroProvider } from '@rocicorp/zero/react';
import { useCallback, useEffect, useMemo, useState } from 'react';
import { getConfig, getSession, logout, type Config, type Session } from './api';
import { Chat } from './Chat';
import { Login } from './Login';
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
        if (!cancelled) setBoot({ state: 'failed', message: String(e instanceof Error ? e.message : e) });
      });
    return () => {
      cancelled = true;
    };
  }, []);

  const onLogout = useCallback(async () => {
    try {
      await logout();
    } finally {
      setBoot((b) => (b.state === 'ready' ? { ...b, session: null } : b));
    }
  }, []);

  // After a 401 from zero-cache (expired token) the cookie may still hold a fresh session;
  // ask the server again and fall back to the login screen if it has none.
  const refreshSession = useCallback(async (): Promise<Session | null> => {
    const session = await getSession();
    setBoot((b) => (b.state === 'ready' ? { ...b, session } : b));
    return session;
  }, []);

  // ZeroProvider recreates the Zero client whenever a prop other than `auth` changes identity,
  // so the context object must stay the same object for the same user.
  const userID = boot.state === 'ready' ? boot.session?.user._id : undefined;
  const context = useMemo(() => (userID ? { userID } : undefined), [userID]);

  if (boot.state === 'loading') {
    return <div className="centered" data-testid="loading">Loading…</div>;
  }
  if (boot.state === 'failed') {
    return (
      <div className="centered error" data-testid="boot-error">
        Could not reach the ZRocket server: {boot.message}
      </div>
    );
  }
  const { config, session } = boot;
  if (!session) {
    return <Login onLogin={(s) => setBoot({ ...boot, session: s })} />;
  }
  return (
    <ZeroProvider
      key={userID}
      cacheURL={config.zeroCacheUrl}
      userID={session.user._id}
      auth={session.token}
      context={context}
      schema={schema}
      mutators={mutators}
    >
      <Chat me={session.user} onLogout={onLogout} refreshSession={refreshSession} />
    </ZeroProvider>
  );
}
