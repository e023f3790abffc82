// One room: its header, its messages live (newest at the bottom), and the composer.
//
// Messages come from `messages.byRoom` (user messages) and `messages.systemByRoom` (joins,
// room created, ...), merged by time. A message this client sent stays marked "pending" until
// the server confirmed it (the mutation's `.server` result), and "failed" if the server
// rejected it.
import { useQuery } from '@rocicorp/zero/react';
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { SessionUser } from './api';
import { formatTime, roomTitle, systemText, timeline } from './format';
import { newId } from './ids';
import { mutators } from './mutators';
import { queries } from './queries';
import type { Selected } from './Sidebar';
import { useMutation } from './useMutation';

/** How many messages a room view loads (the server allows up to 200). */
const PAGE = 100;

export type SendState = 'pending' | 'failed';

export function RoomView({
  me,
  room: { id: roomId, type },
  sendStates,
  setSendState,
  onError,
}: {
  me: SessionUser;
  room: Selected;
  sendStates: ReadonlyMap<string, SendState>;
  setSendState: (messageId: string, state: SendState | null) => void;
  onError: (message: string) => void;
}) {
  const [room] = useQuery(queries.rooms.byId({ type, roomId }));
  const [userMessages] = useQuery(queries.messages.byRoom({ roomId, limit: PAGE }));
  const [systemMessages] = useQuery(queries.messages.systemByRoom({ roomId, limit: PAGE }));
  const mutate = useMutation();
  const [text, setText] = useState('');
  const [editing, setEditing] = useState<{ id: string; text: string } | null>(null);
  const bottom = useRef<HTMLDivElement>(null);

  const items = timeline(userMessages, systemMessages);
  const newest = items.length > 0 ? items[items.length - 1].row._id : '';
  useEffect(() => {
    bottom.current?.scrollIntoView({ block: 'end' });
  }, [newest, roomId]);

  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    const body = text.trim();
    if (body === '') return;
    const id = newId();
    setText('');
    setSendState(id, 'pending');
    const outcome = await mutate(
      mutators.message.send({ id, roomId, text: body, createdAt: Date.now() }),
      onError,
    );
    setSendState(id, outcome.ok ? null : 'failed');
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      void send();
    }
  };

  const saveEdit = async (e: FormEvent) => {
    e.preventDefault();
    if (!editing) return;
    const { id, text: newText } = editing;
    setEditing(null);
    if (newText.trim() !== '') await mutate(mutators.message.edit({ id, text: newText }), onError);
  };

  const remove = (id: string) => mutate(mutators.message.delete({ id }), onError);
  const leave = () => mutate(mutators.room.leave({ roomId }), onError);

  const members = room && Array.isArray(room.usernames) ? (room.usernames as string[]) : [];

  return (
    <section className="room-view" data-testid="room-view" data-room-id={roomId}>
      <header className="room-header">
        <div>
          <h1 data-testid="room-title">{room ? roomTitle(room, me.username) : '…'}</h1>
          {room?.topic && <p className="muted small">{room.topic}</p>}
        </div>
        <div className="room-actions">
          <span className="muted small" data-testid="room-members" title={members.join(', ')}>
            {members.length} member{members.length === 1 ? '' : 's'}
          </span>
          {type !== 'd' && (
            <button type="button" className="link" data-testid="leave-room" onClick={leave}>
              Leave
            </button>
          )}
        </div>
      </header>
      <ol className="messages" data-testid="messages">
        {items.length === 0 && <li className="muted empty">No messages yet. Say hello!</li>}
        {items.map((item) => {
          if (item.kind === 'system') {
            const m = item.row;
            return (
              <li key={m._id} className="system-message muted small" data-testid="system-message" data-type={m.t}>
                {systemText(m.t, m.data)} · {formatTime(m.createdAt)}
              </li>
            );
          }
          const m = item.row;
          const state = sendStates.get(m._id);
          const sender = m.senderUser?.name ?? m.sender?.name ?? m.senderId;
          const mine = m.senderId === me._id;
          return (
            <li
              key={m._id}
              className={`message${mine ? ' mine' : ''}${state ? ` ${state}` : ''}`}
              data-testid="message"
              data-message-id={m._id}
              data-sender={m.sender?.username ?? m.senderId}
              data-pending={state === 'pending' ? 'true' : 'false'}
            >
              <div className="message-meta">
                <strong>{sender}</strong>
                <span className="muted small">{formatTime(m.createdAt)}</span>
                {m.editedAt != null && <span className="muted small">(edited)</span>}
                {state === 'pending' && (
                  <span className="badge pending" data-testid="message-pending" title="Waiting for the server">
                    sending…
                  </span>
                )}
                {state === 'failed' && (
                  <span className="badge failed" data-testid="message-failed">
                    not sent
                  </span>
                )}
                {mine && !state && (
                  <span className="message-tools">
                    <button type="button" className="link" data-testid="message-edit" onClick={() => setEditing({ id: m._id, text: m.text })}>
                      Edit
                    </button>
                    <button type="button" className="link" data-testid="message-delete" onClick={() => remove(m._id)}>
                      Delete
                    </button>
                  </span>
                )}
              </div>
              {editing?.id === m._id ? (
                <form className="edit-form" onSubmit={saveEdit}>
                  <input
                    autoFocus
                    data-testid="message-edit-input"
                    value={editing.text}
                    onChange={(e) => setEditing({ id: m._id, text: e.target.value })}
                    onKeyDown={(e) => e.key === 'Escape' && setEditing(null)}
                  />
                  <button type="submit">Save</button>
                </form>
              ) : (
                <div className="message-text" data-testid="message-text">
                  {m.text}
                </div>
              )}
            </li>
          );
        })}
        <div ref={bottom} />
      </ol>
      <form className="composer" onSubmit={send}>
        <textarea
          data-testid="composer"
          placeholder="Write a message…  (Enter to send, Shift+Enter for a new line)"
          value={text}
          rows={2}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={onKeyDown}
        />
        <button type="submit" data-testid="send" disabled={text.trim() === ''}>
          Send
        </button>
      </form>
    </section>
  );
}
