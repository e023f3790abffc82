// A real Zero client (`@rocicorp/zero` 1.9.0, in memory) that stays connected and reports the
// primary keys of one named query's rows on every change, compactly, and can run one custom
// mutator through its zero-cache. The view-syncer tests (app/tests/view_syncers.rs) run one per
// view-syncer for minutes under a write load: zero-client.mjs prints every row on every change
// and exits at its first match, which suits neither.
//
// Usage: node view-syncer-client.mjs --url URL --schema schema.json --table NAME --query NAME
//          [--args JSON] [--user-id U] [--auth TOKEN] [--mutate NAME --mutate-args JSON]
//          [--timeout-ms N]
// Prints JSON lines:
//   {"resultType", "keys": [sorted primary keys], "atMs"}   on every change of the result
//   {"event": "mutation", "client": {...}, "server": {...}}  once, after the first complete
//                                                            result, when --mutate is given
//   {"event": "reload", "reason"}                            when it starts over (see below)
// The mutator is registered client-side as a no-op: the app's mutate endpoint is the authority,
// and `server` settles only when the client's lastMutationID came back through the change
// stream, i.e. the write was confirmed to this client by its own view-syncer.
// Runs until --timeout-ms (default 10 minutes), then exits 0; SIGTERM ends it at once.
import WebSocket from 'ws';
import {
  Zero,
  createBuilder,
  defineMutator,
  defineMutators,
  defineQueries,
  defineQuery,
} from '@rocicorp/zero';
import { buildSchema } from './zero-schema.mjs';

function usage(msg) {
  process.stderr.write(`view-syncer-client: ${msg}\n`);
  process.exit(2);
}

const opts = { timeoutMs: 600000, args: {} };
const argv = process.argv.slice(2);
const parseJson = (flag, value) => {
  try {
    return JSON.parse(value);
  } catch (e) {
    usage(`${flag} is not JSON (${e.message}): ${value}`);
  }
};
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  switch (flag) {
    case '--url': opts.url = value; break;
    case '--schema': opts.schema = value; break;
    case '--table': opts.table = value; break;
    case '--query': opts.query = value; break;
    case '--args': opts.args = parseJson(flag, value); break;
    case '--user-id': opts.userId = value; break;
    case '--auth': opts.auth = value; break;
    case '--mutate': opts.mutate = value; break;
    case '--mutate-args': opts.mutateArgs = parseJson(flag, value); break;
    case '--timeout-ms':
      opts.timeoutMs = Number(value);
      if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) usage(`--timeout-ms must be a positive number, got ${value}`);
      break;
    default: usage(`unknown option ${flag}`);
  }
}
for (const required of ['url', 'schema', 'table', 'query']) {
  if (!opts[required]) usage(`--${required} is required`);
}
if (opts.mutate && opts.mutateArgs === undefined) usage('--mutate needs --mutate-args');
const dotted = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+$/;
for (const [flag, name] of [['--query', opts.query], ['--mutate', opts.mutate]]) {
  if (name !== undefined && !dotted.test(name)) usage(`${flag} must be a dotted name like a.b, got ${JSON.stringify(name)}`);
}

const { schema, raw } = buildSchema(opts.schema, { enableLegacyQueries: false, fail: usage });
const tableSpec = Object.values(raw.tables).find(t => (t.name ?? '') === opts.table) ?? raw.tables[opts.table];
if (!tableSpec) usage(`--table ${opts.table}: not in ${opts.schema}`);
const primaryKey = tableSpec.primaryKey;

// A tree with one leaf at the dotted `name`.
function tree(name, leaf) {
  const root = {};
  const path = name.split('.');
  let node = root;
  for (const key of path.slice(0, -1)) node = node[key] = {};
  node[path.at(-1)] = leaf;
  return { root, path };
}
function lookup(root, path) {
  let node = root;
  for (const key of path) node = node[key];
  return node;
}

const zql = createBuilder(schema);
const q = tree(opts.query, defineQuery(() => zql[opts.table]));
const queries = defineQueries(q.root);
const query = lookup(queries, q.path)(opts.args);
let mutator;
let mutators;
if (opts.mutate) {
  const m = tree(opts.mutate, defineMutator(async () => {}));
  mutators = defineMutators(m.root);
  mutator = lookup(mutators, m.path);
}

// Node has no browser WebSocket; `ws` throws on an unhandled 'error', which would kill the
// client instead of letting it retry.
class BrowserLikeWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on('error', () => {});
  }
}
globalThis.WebSocket ??= BrowserLikeWebSocket;

const print = obj => process.stdout.write(`${JSON.stringify(obj)}\n`);
const keyOf = row => (primaryKey.length === 1 ? String(row[primaryKey[0]]) : JSON.stringify(primaryKey.map(c => row[c])));

let z;
let mutated = false;
let reloading = false;

// zero-cache answers a client whose state it no longer has with "reload the page"; this client
// does what a tab does: a fresh Zero instance with an empty store.
async function reload(reason) {
  if (reloading) return;
  reloading = true;
  print({ event: 'reload', reason });
  const old = z;
  try {
    await Promise.race([old.close(), new Promise(r => setTimeout(r, 2000))]);
  } catch {
    // dropped either way
  }
  setTimeout(() => {
    reloading = false;
    start();
  }, 1000);
}

async function mutate() {
  const result = z.mutate(mutator(opts.mutateArgs));
  const client = await result.client;
  const server = await result.server;
  print({ event: 'mutation', client, server });
}

function start() {
  z = new Zero({
    cacheURL: opts.url,
    schema,
    ...(mutators ? { mutators } : {}),
    ...(opts.userId ? { userID: opts.userId, context: { userID: opts.userId } } : {}),
    ...(opts.auth ? { auth: opts.auth } : {}),
    kvStore: 'mem',
    logLevel: 'warn',
    onClientStateNotFound: () => reload('ClientStateNotFound'),
    onUpdateNeeded: reason => reload(`UpdateNeeded ${reason?.type ?? ''}`),
    logSink: { log: (level, _ctx, ...args) => process.stderr.write(`view-syncer-client ${level}: ${args.map(a => (a instanceof Error ? a.stack : typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`) },
  });
  const view = z.materialize(query);
  view.addListener((data, resultType, error) => {
    const keys = data.map(keyOf).sort();
    print({ resultType, keys, atMs: Date.now(), ...(error ? { error } : {}) });
    if (resultType === 'complete' && mutator && !mutated) {
      mutated = true;
      mutate().catch(e => print({ event: 'mutation', error: String(e?.stack ?? e) }));
    }
  });
}

start();
process.on('SIGTERM', () => process.exit(0));
setTimeout(() => process.exit(0), opts.timeoutMs);
