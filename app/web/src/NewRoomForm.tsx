// The "new channel / group / direct chat" form: name, topic, and members from `users.all`.
import { useQuery } from '@rocicorp/zero/react';
import { useState, type FormEvent } from 'react';
import type { SessionUser } from './api';
import { newId } from './ids';
import { mutators } from './mutators';
import { queries } from './queries';
import type { RoomType } from './schema';
import type { Selected } from './Sidebar';
import { useMutation } from './useMutation';

const KINDS: { type: RoomType; label: string }[] = [
  { type: 'c', label: 'Channel (public)' },
  { type: 'p', label: 'Group (private)' },
  { type: 'd', label: 'Direct chat' },
];

export function NewRoomForm({
  me,
  initialType,
  onDone,
  onError,
}: {
  me: SessionUser;
  initialType: RoomType;
  onDone: (created: Selected | null) => void;
  onError: (message: string) => void;
}) {
  const [users] = useQuery(queries.users.all({}));
  const mutate = useMutation();
  const [type, setType] = useState<RoomType>(initialType);
  const [name, setName] = useState('');
  const [topic, setTopic] = useState('');
  const [members, setMembers] = useState<string[]>([]);
  const [problem, setProblem] = useState<string | null>(null);

  const others = users.filter((u) => u._id !== me._id);
  const toggle = (id: string) => {
    if (type === 'd') {
      setMembers((m) => (m.includes(id) ? [] : [id]));
    } else {
      setMembers((m) => (m.includes(id) ? m.filter((x) => x !== id) : [...m, id]));
    }
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (type !== 'd' && name.trim() === '') {
      setProblem('Give the room a name.');
      return;
    }
    if (type === 'd' && members.length !== 1) {
      setProblem('Pick the one person to chat with.');
      return;
    }
    const id = newId();
    // Fire and forget: the room appears at once (optimistically); a server rejection is
    // reported through onError and the room disappears again.
    void mutate(
      mutators.room.create({
        id,
        type,
        ...(type === 'd' ? {} : { name: name.trim() }),
        ...(topic.trim() ? { topic: topic.trim() } : {}),
        memberIds: members,
      }),
      onError,
    );
    onDone({ id, type });
  };

  return (
    <div className="modal-backdrop" onClick={() => onDone(null)}>
      <form className="modal" data-testid="new-room-form" onSubmit={submit} onClick={(e) => e.stopPropagation()}>
        <h2>New room</h2>
        <div className="kinds">
          {KINDS.map((k) => (
            <label key={k.type}>
              <input
                type="radio"
                name="kind"
                data-testid={`new-room-type-${k.type}`}
                checked={type === k.type}
                onChange={() => {
                  setType(k.type);
                  setMembers([]);
                }}
              />
              {k.label}
            </label>
          ))}
        </div>
        {type !== 'd' && (
          <>
            <label className="field">
              Name
              <input data-testid="new-room-name" value={name} onChange={(e) => setName(e.target.value)} autoFocus />
            </label>
            <label className="field">
              Topic (optional)
              <input data-testid="new-room-topic" value={topic} onChange={(e) => setTopic(e.target.value)} />
            </label>
          </>
        )}
        <fieldset className="members">
          <legend>{type === 'd' ? 'Chat with' : 'Members'}</legend>
          {others.length === 0 && <p className="muted small">No other users.</p>}
          {others.map((u) => (
            <label key={u._id}>
              <input
                type="checkbox"
                data-testid={`new-room-member-${u.username}`}
                checked={members.includes(u._id)}
                onChange={() => toggle(u._id)}
              />
              {u.name} <span className="muted">@{u.username}</span>
            </label>
          ))}
        </fieldset>
        {problem && <p className="error small">{problem}</p>}
        <div className="modal-buttons">
          <button type="button" className="link" onClick={() => onDone(null)}>
            Cancel
          </button>
          <button type="submit" data-testid="new-room-submit">
            Create
          </button>
        </div>
      </form>
    </div>
  );
}
