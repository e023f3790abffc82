import { describe, expect, it } from 'vitest';
import { roomTitle, systemText, timeline } from './format';
import { newId } from './ids';

describe('roomTitle', () => {
  it('uses the name when there is one', () => {
    expect(roomTitle({ t: 'c', name: 'general', usernames: ['alice'] }, 'alice')).toBe('general');
  });
  it('names a direct chat after the other members', () => {
    expect(roomTitle({ t: 'd', name: null, usernames: ['alice', 'bob'] }, 'alice')).toBe('bob');
  });
  it('survives a malformed usernames value', () => {
    expect(roomTitle({ t: 'd', usernames: 'oops' }, 'alice')).toBe('Direct chat');
  });
});

describe('timeline', () => {
  it('merges newest-first lists into one oldest-first list', () => {
    const user = [
      { _id: 'm3', createdAt: 30 },
      { _id: 'm1', createdAt: 10 },
    ];
    const system = [{ _id: 's2', createdAt: 20 }];
    expect(timeline(user, system).map((i) => i.row._id)).toEqual(['m1', 's2', 'm3']);
  });
  it('orders ties system first, then by id', () => {
    const user = [
      { _id: 'b', createdAt: 5 },
      { _id: 'a', createdAt: 5 },
    ];
    const system = [{ _id: 'z', createdAt: 5 }];
    expect(timeline(user, system).map((i) => `${i.kind}:${i.row._id}`)).toEqual([
      'system:z',
      'user:a',
      'user:b',
    ]);
  });
});

describe('systemText', () => {
  it('describes known types and passes unknown ones through', () => {
    expect(systemText('ROOM_CREATED', { by: 'u-alice', byUsername: 'alice' })).toBe('alice created the room');
    expect(systemText('USER_ADDED', { userId: 'u-bob', username: 'bob', byUsername: 'alice' })).toBe(
      'bob was added by alice',
    );
    expect(systemText('USER_JOINED', { userId: 'u-bob', username: 'bob' })).toBe('bob joined');
    expect(systemText('SOMETHING_NEW', null)).toBe('SOMETHING_NEW');
  });
});

describe('newId', () => {
  it('makes distinct v4 UUIDs', () => {
    const a = newId();
    const b = newId();
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
  });
});
