// The fan-out benchmark's clients (`tests/bench`, `--only fanout`): ONE Node process holding K
// real Zero clients (`@rocicorp/zero` 1.9.0, in memory), all subscribed to the same query (the
// newest rows of one room of `messages`), reporting when each client saw each write. Many
// clients in one process rather than one process per client, because K processes of ~50 MB each
// would not fit the machine long before zero-cache's own limit shows; the bench runs several of
// these processes when one of them is the bound, and measures its CPU to say so.
//
// Usage: node fanout.mjs --url http://127.0.0.1:PORT[,http://127.0.0.1:PORT2...] --clients K
//          --room ROOM [--first N] [--batch 25] [--connect-timeout-ms 120000]
// Clients are spread round-robin over the URLs (client i on URL i mod n); --first numbers them
// (their storage keys) so that several processes never share a client group.
//
// Each client has its own storage key, hence its own client group: Zero's in-memory store is a
// process-wide map keyed by user and storage key, so clients sharing one would share one client
// group (one CVR, one set of pipelines in zero-cache) and the measure would be of one client.
//
// Protocol: stdout, one JSON line each:
//   {"event":"ready","clients":K,"complete":C,"ms":T}   once every client's first result is
//                                                       complete (or its connect timeout passed);
//   then, for every `flush FROM TO TIMEOUT_MS` line read on stdin (writes FROM..TO-1 were made):
//   {"event":"write","seq":S,"sent":MS,"lat":[ms per client that saw it]}  one per write,
//   {"event":"flushed","from":F,"to":T,"served":N,"waited_ms":W}   N = clients that saw all of
//                                                                 them, after W ms of waiting;
//   `quit` on stdin (or its end) closes the clients and exits 0.
// A row's `_id` is `<room>-<seq, 9 digits>` and its `sent_ms` the writer's epoch-ms stamp, so
// latency = the client's epoch-ms clock when its listener ran - sent_ms (one machine, one clock).
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { Zero, createSchema, number, string, table } from '@rocicorp/zero';

function usage(msg) {
  process.stderr.write(
    `fanout: ${msg}\nusage: node fanout.mjs --url URL[,URL...] --clients K --room ROOM [--first N] [--batch N] [--connect-timeout-ms N]\n`,
  );
  process.exit(2);
}

const opts = { first: 0, batch: 25, connectTimeoutMs: 120000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  const int = () => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) usage(`${flag} must be a whole number, got ${value}`);
    return n;
  };
  switch (flag) {
    case '--url': opts.urls = value.split(',').filter(Boolean); break;
    case '--clients': opts.clients = int(); break;
    case '--room':
      if (!/^[\w-]+$/.test(value)) usage(`--room must be letters, digits, '-' or '_', got ${value}`);
      opts.room = value;
      break;
    case '--first': opts.first = int(); break;
    case '--batch': opts.batch = int(); break;
    case '--connect-timeout-ms': opts.connectTimeoutMs = int(); break;
    default: usage(`unknown option ${flag}`);
  }
}
if (!opts.urls?.length) usage('--url is required');
if (!opts.clients) usage('--clients must be at least 1');
if (!opts.room) usage('--room is required');
if (!opts.batch) usage('--batch must be at least 1');

// The bench's `messages` table (tests/bench/src/workload.rs), as source-server publishes it.
const messages = table('messages')
  .columns({
    _id: string(),
    room_id: string(),
    author: string(),
    text: string(),
    sent_ms: number().optional(),
    created_at: number().optional(),
  })
  .primaryKey('_id');
const schema = createSchema({ tables: [messages], enableLegacyQueries: true });

// Node 22's global WebSocket is not `ws`; the Zero client is tested with the browser-like `ws`
// the other tools use. A failed connect must not become an unhandled 'error' event.
class BrowserLikeWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on('error', () => {});
  }
}
globalThis.WebSocket = BrowserLikeWebSocket;

const print = obj => process.stdout.write(`${JSON.stringify(obj)}\n`);
const now = () => performance.timeOrigin + performance.now();
const prefix = `${opts.room}-`;

// seq -> {sent, lat: []}; per client: the seqs it has seen (first sight only counts).
const writes = new Map();
const clients = [];

function openClient(i) {
  const n = opts.first + i;
  const url = opts.urls[i % opts.urls.length];
  const c = { n, seen: new Set(), complete: false, z: null };
  c.z = new Zero({
    cacheURL: url,
    schema,
    userID: `fan-${n}`,
    storageKey: `fan-${opts.room}-${n}`,
    kvStore: 'mem',
    logLevel: 'error',
    logSink: { log: (level, _ctx, ...args) => process.stderr.write(`fanout client ${n} ${level}: ${args.map(a => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`) },
  });
  // The whole room, newest first, without a limit: a client that falls behind gets the rows
  // it missed in one larger poke, and with a limit some would never be in its view.
  const q = c.z.query.messages.where('room_id', opts.room).orderBy('_id', 'desc');
  const view = c.z.materialize(q);
  return new Promise(resolve => {
    const timer = setTimeout(resolve, opts.connectTimeoutMs);
    view.addListener((rows, resultType) => {
      const t = now();
      // New rows are at the top; the scan stops after a run of rows it had seen (a write that
      // committed out of order sits a few rows down, never 64), so a change costs O(new rows).
      let seenRun = 0;
      for (const row of rows) {
        if (seenRun >= 64) break;
        const id = row._id;
        if (!id.startsWith(prefix)) continue;
        const seq = Number(id.slice(prefix.length));
        if (c.seen.has(seq)) {
          seenRun++;
          continue;
        }
        seenRun = 0;
        c.seen.add(seq);
        let w = writes.get(seq);
        if (!w) writes.set(seq, (w = { sent: row.sent_ms ?? null, lat: [] }));
        if (w.sent !== null) w.lat.push(Math.round((t - w.sent) * 100) / 100);
      }
      if (resultType === 'complete' && !c.complete) {
        c.complete = true;
        clearTimeout(timer);
        resolve();
      }
    });
    clients.push(c);
  });
}

const t0 = now();
for (let i = 0; i < opts.clients; i += opts.batch) {
  const batch = [];
  for (let j = i; j < Math.min(i + opts.batch, opts.clients); j++) batch.push(openClient(j));
  await Promise.all(batch);
}
print({ event: 'ready', clients: clients.length, complete: clients.filter(c => c.complete).length, ms: Math.round(now() - t0) });

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function flush(from, to, timeoutMs) {
  const start = now();
  const allSeen = c => {
    for (let s = from; s < to; s++) if (!c.seen.has(s)) return false;
    return true;
  };
  while (now() - start < timeoutMs && !clients.every(allSeen)) await sleep(20);
  for (let s = from; s < to; s++) {
    const w = writes.get(s);
    print({ event: 'write', seq: s, sent: w?.sent ?? null, lat: w?.lat ?? [] });
    writes.delete(s);
  }
  print({ event: 'flushed', from, to, served: clients.filter(allSeen).length, waited_ms: Math.round(now() - start) });
}

async function quit() {
  await Promise.race([Promise.all(clients.map(c => c.z.close().catch(() => {}))), sleep(5000)]);
  process.stdout.write('', () => process.exit(0));
}

// Commands are handled one at a time, in order.
let chain = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on('line', line => {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  chain = chain.then(async () => {
    if (cmd === 'flush' && rest.length === 3 && rest.every(v => /^\d+$/.test(v))) {
      await flush(...rest.map(Number));
    } else if (cmd === 'quit') {
      await quit();
    } else if (cmd) {
      process.stderr.write(`fanout: unknown command ${JSON.stringify(line)} (expected "flush FROM TO TIMEOUT_MS" or "quit")\n`);
    }
  });
});
rl.on('close', () => {
  chain = chain.then(quit);
});
