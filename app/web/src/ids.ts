// New ids for rows the client creates (messages, rooms).
//
// Mutator args carry the id so the optimistic row and the server's row are the same row.
// `crypto.randomUUID` exists only in secure contexts (https or localhost); a deployment served
// over plain http on another host still needs ids, so fall back to getRandomValues.

/** A random RFC 4122 version-4 UUID string. */
export function newId(): string {
  if (typeof crypto.randomUUID === 'function') {
    return crypto.randomUUID();
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
