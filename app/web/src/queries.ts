// ZRocket's named Zero queries, the client-side half.
//
// The client runs these locally for instant (optimistic) results and sends only `{name, args}` to
// zero-cache; the app's query endpoint answers with the authoritative AST for the same name. So
// names and argument shapes here are the contract (see the app's query endpoint), and the ZQL is
// kept the same as the server's, or the local view would flicker when the server's rows arrive.
import { defineQueries, defineQuery } from '@rocicorp/zero';
import { z } from 'zod';
import { zql } from './schema';

/** The largest page of messages a query may ask for (the server clamps to the same). */
export const MAX_MESSAGES = 200;

const roomType = z.enum(['d', 'c', 'p']);
const noArgs = z.object({});

/** Clamps a requested message count to 1..MAX_MESSAGES, as the server does. */
export function clampLimit(limit: number): number {
  return Math.max(1, Math.min(MAX_MESSAGES, Math.floor(limit)));
}

/** Rooms of one type where `userID` has a membership row, most recently active first. */
function myRooms(type: 'd' | 'c' | 'p', userID: string) {
  // One branch per table: the three tables have different row types, so the builder calls
  // cannot be shared through a union.
  switch (type) {
    case 'd':
      return zql.chats
        .whereExists('members', (m) => m.where('userId', userID))
        .orderBy('lastMessageAt', 'desc');
    case 'c':
      return zql.channels
        .whereExists('members', (m) => m.where('userId', userID))
        .orderBy('lastMessageAt', 'desc');
    case 'p':
      return zql.groups
        .whereExists('members', (m) => m.where('userId', userID))
        .orderBy('lastMessageAt', 'desc');
  }
}

/** Matches no row: what a caller without identity gets. */
function noRooms(type: 'd' | 'c' | 'p') {
  switch (type) {
    case 'd':
      return zql.chats.where(({ or }) => or());
    case 'c':
      return zql.channels.where(({ or }) => or());
    case 'p':
      return zql.groups.where(({ or }) => or());
  }
}

/** One room by id, from the table of its type. */
function roomById(type: 'd' | 'c' | 'p', roomId: string) {
  switch (type) {
    case 'd':
      return zql.chats.where('_id', roomId).one();
    case 'c':
      return zql.channels.where('_id', roomId).one();
    case 'p':
      return zql.groups.where('_id', roomId).one();
  }
}

export const queries = defineQueries({
  rooms: {
    // Rooms of one type the caller is a member of, most recently active first.
    mine: defineQuery(z.object({ type: roomType }), ({ args: { type }, ctx }) =>
      ctx ? myRooms(type, ctx.userID) : noRooms(type),
    ),
    // Every public channel, by name (for "join a channel").
    publicChannels: defineQuery(noArgs, () => zql.channels.orderBy('name', 'asc')),
    // One room. The server only answers it for members (or any public channel); locally the
    // client can only see rooms it already synced, which are exactly those.
    byId: defineQuery(z.object({ type: roomType, roomId: z.string() }), ({ args: { type, roomId } }) =>
      roomById(type, roomId),
    ),
  },
  messages: {
    // A room's visible user messages, newest first, with their senders.
    byRoom: defineQuery(
      z.object({ roomId: z.string(), limit: z.number() }),
      ({ args: { roomId, limit } }) =>
        zql.userMessages
          .where('roomId', roomId)
          .where('hidden', 'IS NOT', true)
          .orderBy('createdAt', 'desc')
          .limit(clampLimit(limit))
          .related('senderUser'),
    ),
    // A room's system messages (joins, room created, ...), newest first.
    systemByRoom: defineQuery(
      z.object({ roomId: z.string(), limit: z.number() }),
      ({ args: { roomId, limit } }) =>
        zql.systemMessages
          .where('roomId', roomId)
          .orderBy('createdAt', 'desc')
          .limit(clampLimit(limit)),
    ),
  },
  users: {
    all: defineQuery(noArgs, () => zql.users.orderBy('username', 'asc')),
    byId: defineQuery(z.object({ userId: z.string() }), ({ args: { userId } }) =>
      zql.users.where('_id', userId).one(),
    ),
  },
});
