// Shows the Zero connection state and offers the way out of the states Zero does not leave
// on its own (`needs-auth`: fetch a fresh token; `error`: reconnect).
import { useConnectionState, useZero } from '@rocicorp/zero/react';
import type { Session } from './api';

const LABELS: Record<string, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  disconnected: 'Offline',
  'needs-auth': 'Signed out',
  error: 'Error',
  closed: 'Closed',
};

export function ConnectionIndicator({
  refreshSession,
}: {
  refreshSession: () => Promise<Session | null>;
}) {
  const state = useConnectionState();
  const zero = useZero();
  const reason = 'reason' in state && typeof state.reason === 'string' ? state.reason : undefined;

  const reconnect = async () => {
    if (state.name === 'needs-auth') {
      const session = await refreshSession();
      if (session) await zero.connection.connect({ auth: session.token });
    } else {
      await zero.connection.connect();
    }
  };

  return (
    <div className={`connection connection-${state.name}`} data-testid="connection-state" data-state={state.name} title={reason}>
      <span className="dot" />
      <span>{LABELS[state.name] ?? state.name}</span>
      {(state.name === 'needs-auth' || state.name === 'error') && (
        <button type="button" className="link" data-testid="reconnect" onClick={reconnect}>
          Reconnect
        </button>
      )}
    </div>
  );
}
