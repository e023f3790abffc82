// The dev login screen: pick one of the seeded users.
import { useEffect, useState } from 'react';
import { listLoginUsers, login, type Session, type SessionUser } from './api';

export function Login({ onLogin }: { onLogin: (s: Session) => void }) {
  const [users, setUsers] = useState<SessionUser[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    listLoginUsers()
      .then(setUsers)
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  }, []);

  const pick = async (username: string) => {
    setBusy(true);
    setError(null);
    try {
      onLogin(await login(username));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  };

  return (
    <div className="login" data-testid="login">
      <h1>ZRocket</h1>
      <p className="muted">A chat on Zero and MongoDB. Sign in as one of the demo users:</p>
      {error && (
        <p className="error" data-testid="login-error">
          {error}
        </p>
      )}
      {users === null && !error && <p className="muted">Loading users…</p>}
      {users && users.length === 0 && (
        <p className="muted">No users yet: seed the database (zrocket seed).</p>
      )}
      <ul className="login-users">
        {users?.map((u) => (
          <li key={u._id}>
            <button
              type="button"
              disabled={busy}
              data-testid={`login-user-${u.username}`}
              onClick={() => pick(u.username)}
            >
              <span className="avatar">{u.name.slice(0, 1).toUpperCase()}</span>
              <span>
                <strong>{u.name}</strong>
                <span className="muted"> @{u.username}</span>
              </span>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
