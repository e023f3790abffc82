// ZRocket's custom Zero mutators, the client-side (optimistic) half.
//
// `zero.mutate(mutators.x(args))` runs these at once against the local store so the UI updates
// without a round trip, and sends `{name, args}` to zero-cache, which forwards it to the app's
// mutate endpoint. The Rust server is the authority: it re-checks permissions and writes MongoDB;
// when its result arrives the client drops these optimistic writes in favour of the synced rows.
// So the names and arguments are the contract; the bodies only need to predict the server's
// result closely enough that nothing flickers. Anything the server derives on its own (system
// messages, ids it invents) is left out here.
import { defineMutator, defineMutators, type Transaction } from '@rocicorp/zero';
import { z } from 'zod';
import { roomTable, zql, type LastMessage, type RoomType, type Schema } from './schema';

type Tx = Transaction<Schema>;

const roomType = z.enum(['d', 'c', 'p']);

/** The id of a membership row: one per (room, user), as the server writes it. */
export function memberRowId(roomId: string, userId: string): string {
  return `${roomId}:${userId}`;
}

/** Returns the logged-in user's id, or throws: every mutator needs an identity. */
function requireUser(ctx: { userID: string } | undefined): string {
  if (!ctx) {
    throw new Error('not logged in');
  }
  return ctx.userID;
}

type RoomRow = {
  _id: string;
  t: RoomType;
  memberIds: readonly string[];
  usernames: readonly string[];
  messageCount: number;
};

/** Finds a room in whichever of chats/channels/groups holds it (only synced rooms are visible). */
async function findRoom(tx: Tx, roomId: string): Promise<RoomRow | undefined> {
  const chat = await tx.run(zql.chats.where('_id', roomId).one());
  if (chat) return chat as RoomRow;
  const channel = await tx.run(zql.channels.where('_id', roomId).one());
  if (channel) return channel as RoomRow;
  const group = await tx.run(zql.groups.where('_id', roomId).one());
  return group as RoomRow | undefined;
}

type RoomPatch = {
  _id: string;
  memberIds?: string[];
  usernames?: string[];
  messageCount?: number;
  lastMessage?: LastMessage;
  lastMessageAt?: number;
  updatedAt?: number;
};

/** Updates a room row in the table of its type. */
async function updateRoom(tx: Tx, type: RoomType, patch: RoomPatch): Promise<void> {
  switch (roomTable(type)) {
    case 'chats':
      return tx.mutate.chats.update(patch);
    case 'channels':
      return tx.mutate.channels.update(patch);
    case 'groups':
      return tx.mutate.groups.update(patch);
  }
}

/** The usernames of the given users, in the same order, skipping users not synced locally. */
async function usernamesOf(tx: Tx, userIds: readonly string[]): Promise<string[]> {
  const names: string[] = [];
  for (const id of userIds) {
    const user = await tx.run(zql.users.where('_id', id).one());
    if (user) names.push(user.username);
  }
  return names;
}

/** Adds users to a room locally: membership rows plus the room's denormalized member lists. */
async function addMembers(tx: Tx, room: RoomRow, userIds: readonly string[], now: number) {
  const newIds = userIds.filter((id) => !room.memberIds.includes(id));
  for (const userId of newIds) {
    await tx.mutate.roomMembers.upsert({
      _id: memberRowId(room._id, userId),
      roomId: room._id,
      userId,
      roomType: room.t,
      joinedAt: now,
    });
  }
  if (newIds.length > 0) {
    await updateRoom(tx, room.t, {
      _id: room._id,
      memberIds: [...room.memberIds, ...newIds],
      usernames: [...room.usernames, ...(await usernamesOf(tx, newIds))],
      updatedAt: now,
    });
  }
}

export const mutators = defineMutators({
  message: {
    send: defineMutator(
      z.object({
        id: z.string(),
        roomId: z.string(),
        text: z.string(),
        createdAt: z.number(),
      }),
      async ({ tx, args: { id, roomId, text, createdAt }, ctx }) => {
        const me = requireUser(ctx);
        const trimmed = text.trim();
        if (trimmed === '') {
          throw new Error('message text is empty');
        }
        const user = await tx.run(zql.users.where('_id', me).one());
        const sender = { _id: me, username: user?.username ?? me, name: user?.name ?? me };
        await tx.mutate.userMessages.insert({
          _id: id,
          roomId,
          text: trimmed,
          senderId: me,
          sender,
          hidden: false,
          pinned: false,
          createdAt,
          updatedAt: createdAt,
        });
        const room = await findRoom(tx, roomId);
        if (room) {
          await updateRoom(tx, room.t, {
            _id: roomId,
            lastMessage: {
              _id: id,
              text: trimmed,
              senderId: me,
              senderUsername: sender.username,
              createdAt,
            },
            lastMessageAt: createdAt,
            messageCount: room.messageCount + 1,
            updatedAt: createdAt,
          });
        }
      },
    ),
    edit: defineMutator(
      z.object({ id: z.string(), text: z.string() }),
      async ({ tx, args: { id, text }, ctx }) => {
        const me = requireUser(ctx);
        const msg = await tx.run(zql.userMessages.where('_id', id).one());
        if (!msg || msg.senderId !== me) {
          throw new Error('only the sender can edit a message');
        }
        const now = Date.now();
        await tx.mutate.userMessages.update({ _id: id, text: text.trim(), editedAt: now, updatedAt: now });
      },
    ),
    delete: defineMutator(z.object({ id: z.string() }), async ({ tx, args: { id }, ctx }) => {
      const me = requireUser(ctx);
      const msg = await tx.run(zql.userMessages.where('_id', id).one());
      if (!msg || msg.senderId !== me) {
        throw new Error('only the sender can delete a message');
      }
      await tx.mutate.userMessages.delete({ _id: id });
    }),
  },
  room: {
    create: defineMutator(
      z.object({
        id: z.string(),
        type: roomType,
        name: z.string().optional(),
        topic: z.string().optional(),
        memberIds: z.array(z.string()),
      }),
      async ({ tx, args: { id, type, name, topic, memberIds }, ctx }) => {
        const me = requireUser(ctx);
        const cleanName = name?.trim();
        if (type !== 'd' && !cleanName) {
          throw new Error('a channel or group needs a name');
        }
        const members = [me, ...memberIds.filter((m) => m !== me)].filter(
          (m, i, all) => all.indexOf(m) === i,
        );
        const now = Date.now();
        const row = {
          _id: id,
          t: type,
          name: cleanName ?? null,
          topic: topic?.trim() || undefined,
          readOnly: false,
          archived: false,
          memberIds: members,
          usernames: await usernamesOf(tx, members),
          messageCount: 0,
          createdBy: me,
          createdAt: now,
          updatedAt: now,
        };
        switch (type) {
          case 'd':
            await tx.mutate.chats.insert(row);
            break;
          case 'c':
            await tx.mutate.channels.insert({ ...row, name: cleanName ?? '' });
            break;
          case 'p':
            await tx.mutate.groups.insert({ ...row, name: cleanName ?? '' });
            break;
        }
        for (const userId of members) {
          await tx.mutate.roomMembers.upsert({
            _id: memberRowId(id, userId),
            roomId: id,
            userId,
            roomType: type,
            joinedAt: now,
          });
        }
      },
    ),
    join: defineMutator(z.object({ roomId: z.string() }), async ({ tx, args: { roomId }, ctx }) => {
      const me = requireUser(ctx);
      const channel = await tx.run(zql.channels.where('_id', roomId).one());
      if (!channel) {
        throw new Error('only public channels can be joined');
      }
      await addMembers(tx, channel as RoomRow, [me], Date.now());
    }),
    leave: defineMutator(z.object({ roomId: z.string() }), async ({ tx, args: { roomId }, ctx }) => {
      const me = requireUser(ctx);
      await tx.mutate.roomMembers.delete({ _id: memberRowId(roomId, me) });
      const room = await findRoom(tx, roomId);
      if (room) {
        const rest = room.memberIds.filter((id) => id !== me);
        await updateRoom(tx, room.t, {
          _id: roomId,
          memberIds: rest,
          usernames: await usernamesOf(tx, rest),
          updatedAt: Date.now(),
        });
      }
    }),
    invite: defineMutator(
      z.object({ roomId: z.string(), userIds: z.array(z.string()) }),
      async ({ tx, args: { roomId, userIds }, ctx }) => {
        const me = requireUser(ctx);
        const room = await findRoom(tx, roomId);
        if (!room || !room.memberIds.includes(me)) {
          throw new Error('only members can invite to a room');
        }
        await addMembers(tx, room, userIds, Date.now());
      },
    ),
  },
});
