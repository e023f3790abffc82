// Pure display helpers: room titles, timestamps, and the merged message timeline.
//
// Kept apart from the components so they can be unit-tested without a browser or a Zero client.

/** A room's title: its name, or for a direct chat the other members' usernames. */
export function roomTitle(
  room: { t: string; name?: string | null; usernames: readonly string[] | unknown },
  myUsername: string,
): string {
  if (room.name) return room.name;
  const names = Array.isArray(room.usernames)
    ? (room.usernames as unknown[]).filter((n): n is string => typeof n === 'string')
    : [];
  const others = names.filter((n) => n !== myUsername);
  if (others.length > 0) return others.join(', ');
  return room.t === 'd' ? 'Direct chat' : '(unnamed)';
}

/** Formats epoch milliseconds as a short local time (HH:MM), or date + time if not today. */
export function formatTime(ms: number, now: number = Date.now()): string {
  const d = new Date(ms);
  const today = new Date(now);
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.toLocaleDateString()} ${time}`;
}

/**
 * Merges user and system messages (each newest first, as the queries return them) into one
 * list, oldest first, so the newest message sits at the bottom. Ties keep user messages after
 * system ones and otherwise order by id, so the order is stable across renders.
 */
export function timeline<U extends { _id: string; createdAt: number }, S extends { _id: string; createdAt: number }>(
  userMessages: readonly U[],
  systemMessages: readonly S[],
): ({ kind: 'user'; row: U } | { kind: 'system'; row: S })[] {
  const all = [
    ...userMessages.map((row) => ({ kind: 'user' as const, row })),
    ...systemMessages.map((row) => ({ kind: 'system' as const, row })),
  ];
  all.sort((a, b) => {
    if (a.row.createdAt !== b.row.createdAt) return a.row.createdAt - b.row.createdAt;
    if (a.kind !== b.kind) return a.kind === 'system' ? -1 : 1;
    return a.row._id < b.row._id ? -1 : a.row._id > b.row._id ? 1 : 0;
  });
  return all;
}

/**
 * A human sentence for a system message type, e.g. ROOM_CREATED → "alice created the room".
 * `data` is what the server stores: `{by, byUsername, roomName?}` for ROOM_CREATED,
 * `{userId, username, by?, byUsername?}` for membership changes.
 */
export function systemText(t: string, data: unknown): string {
  const d = (data && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  const str = (k: string) => (typeof d[k] === 'string' ? (d[k] as string) : undefined);
  const actor = str('byUsername') ?? str('by') ?? 'someone';
  const subject = str('username') ?? str('userId') ?? 'someone';
  const byActor = str('byUsername') ? ` by ${str('byUsername')}` : '';
  switch (t) {
    case 'ROOM_CREATED':
      return `${actor} created the room`;
    case 'USER_JOINED':
      return `${subject} joined`;
    case 'USER_LEFT':
      return `${subject} left`;
    case 'USER_ADDED':
      return `${subject} was added${byActor}`;
    case 'USER_REMOVED':
      return `${subject} was removed${byActor}`;
    case 'ROOM_RENAMED':
      return `room renamed${str('name') ? ` to ${str('name')}` : ''}`;
    case 'ROOM_TOPIC_CHANGED':
      return `topic changed${str('topic') ? ` to ${str('topic')}` : ''}`;
    case 'MESSAGE_PINNED':
      return 'a message was pinned';
    case 'MESSAGE_DELETED':
      return 'a message was deleted';
    default:
      return t;
  }
}
