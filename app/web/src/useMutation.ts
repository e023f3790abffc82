// Runs a custom mutator and reports both of its outcomes.
//
// A Zero mutation has two results: `.client` (the optimistic run against the local store) and
// `.server` (settled once the app's mutate endpoint ran it and zero-cache synced the client's
// lastMutationID, or its error row, back to this client). The UI shows a message as pending until
// `.server` is a success, and shows the server's error message when it is not.
import { useZero } from '@rocicorp/zero/react';
import { useCallback } from 'react';

export type MutationOutcome = { ok: true } | { ok: false; message: string };

type Details =
  | { readonly type: 'success' }
  | { readonly type: 'error'; readonly error: { readonly type: string; readonly message: string } };

/** Turns a mutator result into an outcome, naming where it failed. */
export function outcomeOf(where: 'client' | 'server', d: Details): MutationOutcome {
  if (d.type === 'success') return { ok: true };
  const prefix = where === 'server' ? 'Server rejected the change' : 'Could not apply the change';
  return { ok: false, message: `${prefix}: ${d.error.message}` };
}

/**
 * Returns `run(request, onError)`: applies the mutation and resolves with the server's outcome.
 * `onError` gets a readable message for a client- or server-side failure.
 */
export function useMutation() {
  const zero = useZero();
  return useCallback(
    async (
      request: Parameters<typeof zero.mutate>[0],
      onError: (message: string) => void,
    ): Promise<MutationOutcome> => {
      let result;
      try {
        result = zero.mutate(request);
      } catch (e) {
        const message = `Could not apply the change: ${e instanceof Error ? e.message : String(e)}`;
        onError(message);
        return { ok: false, message };
      }
      const client = outcomeOf('client', await result.client);
      if (!client.ok) {
        onError(client.message);
        // The server may still accept what the local store could not apply; wait for it.
      }
      const server = outcomeOf('server', await result.server);
      if (!server.ok) onError(server.message);
      return server;
    },
    [zero],
  );
}
