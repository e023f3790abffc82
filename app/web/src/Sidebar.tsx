// The room list: my direct chats, channels and groups (live through `rooms.mine`), and the
// public channels I have not joined yet.
import { useQuery } from '@rocicorp/zero/react';
import type { SessionUser } from './api';
import { roomTitle } from './format';
import { queries } from './queries';
import type { RoomType } from './schema';

export type Selected = { id: string; type: RoomType };

type RoomLike = {
  _id: string;
  t: string;
  name?: string | null;
  usernames: unknown;
  lastMessage?: { text?: string } | null;
};

/** `#` for channels, `@` for direct chats, a small lock (inline SVG, no emoji font needed) for groups. */
function RoomIcon({ type }: { type: RoomType }) {
  if (type !== 'p') return <span className="room-icon">{type === 'c' ? '#' : '@'}</span>;
  return (
    <span className="room-icon" aria-label="private">
      <svg width="11" height="13" viewBox="0 0 11 13" aria-hidden="true">
        <rect x="0.5" y="5.5" width="10" height="7" rx="1.5" fill="currentColor" />
        <path d="M2.5 5.5V3.5a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" strokeWidth="1.5" />
      </svg>
    </span>
  );
}

function RoomList({
  title,
  type,
  rooms,
  me,
  selected,
  onSelect,
}: {
  title: string;
  type: RoomType;
  rooms: readonly RoomLike[];
  me: SessionUser;
  selected: Selected | null;
  onSelect: (s: Selected) => void;
}) {
  return (
    <section className="room-section" data-testid={`rooms-${type}`}>
      <h2>{title}</h2>
      {rooms.length === 0 && <p className="muted small">None yet</p>}
      <ul>
        {rooms.map((r) => {
          const name = roomTitle(r, me.username);
          return (
            <li key={r._id}>
              <button
                type="button"
                className={selected?.id === r._id ? 'room active' : 'room'}
                data-testid={`room-${r._id}`}
                data-room-name={name}
                data-room-type={type}
                onClick={() => onSelect({ id: r._id, type })}
              >
                <RoomIcon type={type} />
                <span className="room-text">
                  <span className="room-name">{name}</span>
                  {r.lastMessage?.text && <span className="room-last muted small">{r.lastMessage.text}</span>}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

export function Sidebar({
  me,
  selected,
  onSelect,
  onJoin,
}: {
  me: SessionUser;
  selected: Selected | null;
  onSelect: (s: Selected) => void;
  onJoin: (roomId: string) => void;
}) {
  const [direct] = useQuery(queries.rooms.mine({ type: 'd' }));
  const [channels] = useQuery(queries.rooms.mine({ type: 'c' }));
  const [groups] = useQuery(queries.rooms.mine({ type: 'p' }));
  const [publicChannels] = useQuery(queries.rooms.publicChannels({}));
  const mine = new Set(channels.map((c) => c._id));
  const joinable = publicChannels.filter((c) => !mine.has(c._id));

  return (
    <nav className="sidebar" data-testid="sidebar">
      <RoomList title="Direct" type="d" rooms={direct} me={me} selected={selected} onSelect={onSelect} />
      <RoomList title="Channels" type="c" rooms={channels} me={me} selected={selected} onSelect={onSelect} />
      <RoomList title="Groups" type="p" rooms={groups} me={me} selected={selected} onSelect={onSelect} />
      {joinable.length > 0 && (
        <section className="room-section" data-testid="public-channels">
          <h2>Join a channel</h2>
          <ul>
            {joinable.map((c) => (
              <li key={c._id} className="joinable">
                <span className="room-name"># {c.name}</span>
                <button type="button" className="link" data-testid={`join-${c._id}`} onClick={() => onJoin(c._id)}>
                  Join
                </button>
              </li>
            ))}
          </ul>
        </section>
      )}
    </nav>
  );
}
