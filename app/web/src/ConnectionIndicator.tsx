// Shows the Zero connection state and leads out of the states Zero does not leave on its own.
//
// `needs-auth` means the app's mutate or query endpoint (reached through zero-cache with the
// browser's cookie) or zero-cache itself refused us. The session may still be fine (e.g. the
// app restarted mid-request), so the indicator asks `/api/auth/session` at once: a live session
// reconnects (with no token: the cookie is the credential), none sends the user to the sign-in
// screen. `error` offers a manual reconnect.
import { useConnectionState, useZero } from '@rocicorp/zero/react';
import { useCallback, useEffect, useRef, useState } from 'react';
import type { Session } from './api';
import { UnreachableError } from './api';
import { UNREACHABLE } from './authRules';

const LABELS: Record<string, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  disconnected: 'Offline',
  'needs-auth': 'Checking sign-in…',
  error: 'Error',
  closed: 'Closed',
};

/** Automatic re-checks after `needs-auth` are at most this often, so a refusal cannot loop. */
const AUTO_RECHECK_MS = 10_000;

export function ConnectionIndicator({
  refreshSession,
}: {
  refreshSession: () => Promise<Session | null>;
}) {
  const state = useConnectionState();
  const zero = useZero();
  const [problem, setProblem] = useState<string | null>(null);
  const lastAuto = useRef(0);
  const reason = 'reason' in state && typeof state.reason === 'string' ? state.reason : undefined;

  const recheck = useCallback(async () => {
    setProblem(null);
    try {
      // null: App shows the sign-in screen and this component goes away with the Zero client.
      const session = await refreshSession();
      if (session) await zero.connection.connect();
    } catch (e) {
      setProblem(e instanceof UnreachableError ? UNREACHABLE : String(e instanceof Error ? e.message : e));
    }
  }, [refreshSession, zero]);

  useEffect(() => {
    if (state.name !== 'needs-auth') return;
    const now = Date.now();
    if (now - lastAuto.current < AUTO_RECHECK_MS) return;
    lastAuto.current = now;
    void recheck();
  }, [state.name, recheck]);

  const retry = () => (state.name === 'needs-auth' ? recheck() : zero.connection.connect());

  return (
    <div
      className={`connection connection-${state.name}`}
      data-testid="connection-state"
      data-state={state.name}
      title={problem ?? reason}
    >
      <span className="dot" />
      <span>{LABELS[state.name] ?? state.name}</span>
      {problem && <span className="error small" data-testid="connection-problem">{problem}</span>}
      {(state.name === 'needs-auth' || state.name === 'error') && (
        <button type="button" className="link" data-testid="reconnect" onClick={() => void retry()}>
          Reconnect
        </button>
      )}
    </div>
  );
}
