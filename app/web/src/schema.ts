// The Zero schema of ZRocket, the client's half of the contract in the app's schema export.
//
// It must match what `zrocket export` writes (table and column names, types, `optional`,
// primary keys): zero-cache compares the client schema with its replica at connect time and
// rejects a client whose tables or column types differ. Client names equal server names, so no
// `.from()` anywhere. Timestamps are epoch-millisecond numbers (the source converts BSON Dates).
import {
  boolean,
  createBuilder,
  createSchema,
  json,
  number,
  relationships,
  string,
  table,
} from '@rocicorp/zero';

/** A room's last message, denormalized onto the room document by `message.send`. */
export type LastMessage = {
  _id: string;
  text: string;
  senderId: string;
  senderUsername: string;
  createdAt: string | number;
};

/** The sender snapshot stored on each user message. */
export type Sender = { _id: string; username: string; name: string };

export type RoomType = 'd' | 'c' | 'p';

const users = table('users')
  .columns({
    _id: string(),
    username: string(),
    name: string(),
    email: string().optional(),
    avatarUrl: string().optional(),
    bio: string().optional(),
    active: boolean(),
    createdAt: number(),
    updatedAt: number(),
  })
  .primaryKey('_id');

// chats (t=d), channels (t=c) and groups (t=p) share one shape: they are the `rooms` collection
// split by the `t` discriminator. Only a direct chat may have no name.
function roomColumns(nameOptional: boolean) {
  return {
    _id: string(),
    t: string<RoomType>(),
    name: nameOptional ? string().optional() : string(),
    topic: string().optional(),
    description: string().optional(),
    readOnly: boolean().optional(),
    archived: boolean().optional(),
    memberIds: json<string[]>(),
    usernames: json<string[]>(),
    messageCount: number(),
    lastMessage: json<LastMessage>().optional(),
    lastMessageAt: number().optional(),
    createdBy: string().optional(),
    createdAt: number(),
    updatedAt: number(),
  };
}

const chats = table('chats').columns(roomColumns(true)).primaryKey('_id');
const channels = table('channels').columns(roomColumns(false)).primaryKey('_id');
const groups = table('groups').columns(roomColumns(false)).primaryKey('_id');

const userMessages = table('userMessages')
  .columns({
    _id: string(),
    roomId: string(),
    text: string(),
    senderId: string(),
    sender: json<Sender>(),
    hidden: boolean().optional(),
    pinned: boolean().optional(),
    editedAt: number().optional(),
    createdAt: number(),
    updatedAt: number(),
  })
  .primaryKey('_id');

const systemMessages = table('systemMessages')
  .columns({
    _id: string(),
    roomId: string(),
    t: string(),
    data: json().optional(),
    createdAt: number(),
    updatedAt: number(),
  })
  .primaryKey('_id');

const roomMembers = table('roomMembers')
  .columns({
    _id: string(),
    roomId: string(),
    userId: string(),
    roomType: string<RoomType>(),
    joinedAt: number(),
  })
  .primaryKey('_id');

const chatsRelationships = relationships(chats, ({ many }) => ({
  messages: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: userMessages }),
  systemMessages: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: systemMessages }),
  members: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: roomMembers }),
}));
const channelsRelationships = relationships(channels, ({ many }) => ({
  messages: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: userMessages }),
  systemMessages: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: systemMessages }),
  members: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: roomMembers }),
}));
const groupsRelationships = relationships(groups, ({ many }) => ({
  messages: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: userMessages }),
  systemMessages: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: systemMessages }),
  members: many({ sourceField: ['_id'], destField: ['roomId'], destSchema: roomMembers }),
}));
const roomMembersRelationships = relationships(roomMembers, ({ one }) => ({
  user: one({ sourceField: ['userId'], destField: ['_id'], destSchema: users }),
}));
const userMessagesRelationships = relationships(userMessages, ({ one }) => ({
  senderUser: one({ sourceField: ['senderId'], destField: ['_id'], destSchema: users }),
}));

export const schema = createSchema({
  tables: [users, chats, channels, groups, userMessages, systemMessages, roomMembers],
  relationships: [
    chatsRelationships,
    channelsRelationships,
    groupsRelationships,
    roomMembersRelationships,
    userMessagesRelationships,
  ],
});

/** The ZQL query builder over the schema. */
export const zql = createBuilder(schema);

export type Schema = typeof schema;

/** What the client passes as `context` to its queries and mutators: who is logged in. */
export type ZeroContext = { userID: string } | undefined;

declare module '@rocicorp/zero' {
  interface DefaultTypes {
    schema: Schema;
    context: ZeroContext;
  }
}

/** The room table that holds rooms of a given type. */
export function roomTable(type: RoomType): 'chats' | 'channels' | 'groups' {
  switch (type) {
    case 'd':
      return 'chats';
    case 'c':
      return 'channels';
    case 'p':
      return 'groups';
  }
}
