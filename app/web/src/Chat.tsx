// The signed-in screen: top bar (user, connection, change password, sign out), sidebar, the
// open room, the new-room form, and the list of errors the server returned for this user's
// changes.
import { useCallback, useState } from 'react';
import type { Session, SessionUser } from './api';
import { ChangePasswordDialog } from './ChangePasswordDialog';
import { ConnectionIndicator } from './ConnectionIndicator';
import { mutators } from './mutators';
import { NewRoomForm } from './NewRoomForm';
import { RoomView, type SendState } from './RoomView';
import type { RoomType } from './schema';
import { Sidebar, type Selected } from './Sidebar';
import { useMutation } from './useMutation';

export function Chat({
  me,
  onSignOut,
  refreshSession,
}: {
  me: SessionUser;
  /** Resolves with a message when signing out failed (the user stays signed in). */
  onSignOut: () => Promise<string | null>;
  refreshSession: () => Promise<Session | null>;
}) {
  const [selected, setSelected] = useState<Selected | null>(null);
  const [creating, setCreating] = useState<RoomType | null>(null);
  const [errors, setErrors] = useState<{ id: number; message: string }[]>([]);
  const [changingPassword, setChangingPassword] = useState(false);
  const [signingOut, setSigningOut] = useState(false);
  const [sendStates, setSendStates] = useState<ReadonlyMap<string, SendState>>(new Map());
  const mutate = useMutation();

  const reportError = useCallback((message: string) => {
    // Keep the last few; older ones are stale.
    setErrors((e) => [...e.slice(-2), { id: Date.now() + Math.random(), message }]);
  }, []);

  const setSendState = useCallback((id: string, state: SendState | null) => {
    setSendStates((prev) => {
      const next = new Map(prev);
      if (state) next.set(id, state);
      else next.delete(id);
      return next;
    });
  }, []);

  const signOut = async () => {
    setSigningOut(true);
    const problem = await onSignOut();
    // On success this component is gone; on failure the user is still here and told why.
    if (problem) {
      setSigningOut(false);
      reportError(problem);
    }
  };

  const join = (roomId: string) => {
    void mutate(mutators.room.join({ roomId }), reportError);
    setSelected({ id: roomId, type: 'c' });
  };

  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">ZRocket</span>
        <ConnectionIndicator refreshSession={refreshSession} />
        <span className="spacer" />
        <button type="button" data-testid="new-channel" onClick={() => setCreating('c')}>
          + Channel
        </button>
        <button type="button" data-testid="new-group" onClick={() => setCreating('p')}>
          + Group
        </button>
        <button type="button" data-testid="new-direct" onClick={() => setCreating('d')}>
          + Direct
        </button>
        <span className="me" data-testid="me" data-user-id={me._id}>
          {me.name} <span className="muted">@{me.username}</span>
        </span>
        <button type="button" className="link" data-testid="change-password" onClick={() => setChangingPassword(true)}>
          Change password
        </button>
        <button type="button" className="link" data-testid="logout" onClick={signOut} disabled={signingOut}>
          {signingOut ? 'Signing out…' : 'Sign out'}
        </button>
      </header>
      {errors.length > 0 && (
        <div className="errors" data-testid="mutation-errors">
          {errors.map((e) => (
            <div key={e.id} className="error-item" data-testid="mutation-error">
              <span>{e.message}</span>
              <button type="button" className="link" onClick={() => setErrors((all) => all.filter((x) => x.id !== e.id))}>
                Dismiss
              </button>
            </div>
          ))}
        </div>
      )}
      <div className="main">
        <Sidebar me={me} selected={selected} onSelect={setSelected} onJoin={join} />
        {selected ? (
          <RoomView
            key={selected.id}
            me={me}
            room={selected}
            sendStates={sendStates}
            setSendState={setSendState}
            onError={reportError}
          />
        ) : (
          <section className="room-view placeholder muted" data-testid="no-room">
            Pick a room on the left, or start a new one.
          </section>
        )}
      </div>
      {changingPassword && <ChangePasswordDialog username={me.username} onClose={() => setChangingPassword(false)} />}
      {creating && (
        <NewRoomForm
          me={me}
          initialType={creating}
          onError={reportError}
          onDone={(created) => {
            setCreating(null);
            if (created) setSelected(created);
          }}
        />
      )}
    </div>
  );
}
