// A real Zero client (`@rocicorp/zero` 1.9.0, in memory) for end-to-end tests: it proves that a
// row written to MongoDB travels through source-server and zero-cache to a client, using the
// same client code a browser runs.
//
// Usage: node zero-client.mjs --url http://127.0.0.1:PORT --schema schema.json --table NAME
//          [--user-id U] [--auth TOKEN] [--query NAME [--args JSON]]
//          [--until-json '{"id":"a"}'] [--timeout-ms N]
// The schema file is a Zero schema as JSON (what JSON.stringify(schema) gives; a wrapper
// {"schema": {...}} is accepted too).
//
// Two modes:
// - legacy (no --query): a plain ZQL query over the whole table, which zero-cache authorizes
//   with the published permissions (so it sees nothing when they are `null`);
// - named (--query NAME, e.g. rooms.publicChannels, with --args JSON, usually with --auth and
//   --user-id): a named query defined with defineQueries/defineQuery. zero-cache asks the app's
//   query endpoint (ZERO_QUERY_URL) for the real AST of NAME + args; the client-side definition
//   (the whole --table) only gives the local, optimistic view over the rows that sync.
// Either way it prints one JSON line per result-set change: {"resultType", "rows"} (and
// {"event": "reload"} when it starts over as a reloaded page would, see below). It exits 0 as
// soon as a row containing every property of --until-json appears (without --until-json: on
// the first complete result), and 1 on timeout (default 30 s), after printing what it saw.
import { isDeepStrictEqual } from 'node:util';
import WebSocket from 'ws';
import {
  Zero,
  createBuilder,
  defineQueries,
  defineQuery,
} from '@rocicorp/zero';
import { buildSchema } from './zero-schema.mjs';

function usage(msg) {
  process.stderr.write(
    `zero-client: ${msg}\nusage: node zero-client.mjs --url URL --schema FILE --table NAME [--user-id U] [--auth TOKEN] [--query NAME [--args JSON]] [--until-json JSON] [--timeout-ms N]\n`,
  );
  process.exit(2);
}

const opts = { timeoutMs: 30000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const flag = argv[i];
  const value = argv[i + 1];
  if (value === undefined) usage(`${flag} needs a value`);
  i++;
  switch (flag) {
    case '--url': opts.url = value; break;
    case '--schema': opts.schema = value; break;
    case '--table': opts.table = value; break;
    case '--user-id': opts.userId = value; break;
    case '--auth': opts.auth = value; break;
    case '--query':
      // Dotted registry path; each segment becomes one level of the defineQueries tree.
      if (!/^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/.test(value)) {
        usage(`--query must be a dotted query name like rooms.publicChannels, got ${JSON.stringify(value)}`);
      }
      opts.query = value;
      break;
    case '--args':
      try {
        opts.args = JSON.parse(value);
      } catch (e) {
        usage(`--args is not JSON (${e.message}): ${value}`);
      }
      break;
    case '--until-json':
      try {
        opts.until = JSON.parse(value);
      } catch (e) {
        usage(`--until-json is not JSON (${e.message}): ${value}`);
      }
      if (typeof opts.until !== 'object' || opts.until === null || Array.isArray(opts.until)) {
        usage(`--until-json must be a JSON object (a subset of a row), got ${value}`);
      }
      break;
    case '--timeout-ms':
      opts.timeoutMs = Number(value);
      if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) usage(`--timeout-ms must be a positive number, got ${value}`);
      break;
    default: usage(`unknown option ${flag}`);
  }
}
for (const required of ['url', 'schema', 'table']) {
  if (!opts[required]) usage(`--${required} is required`);
}
if (opts.args !== undefined && !opts.query) usage('--args needs --query');

// Named mode turns legacy queries off, as a real app does: then only the named query can make
// rows sync, so seeing a row proves the app's query endpoint answered for it.
const { schema } = buildSchema(opts.schema, { enableLegacyQueries: !opts.query, fail: usage });
if (!schema.tables[opts.table]) {
  usage(`--table ${opts.table}: not in ${opts.schema} (tables: ${Object.keys(schema.tables).join(', ')})`);
}

// Node 20 has no global WebSocket; the Zero client expects the browser one. A browser socket
// reports a failed connect through its 'error' event and then closes; `ws` additionally throws
// an unhandled EventEmitter 'error' unless someone listens, which would kill the client instead
// of letting it retry.
class BrowserLikeWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on('error', () => {});
  }
}
globalThis.WebSocket ??= BrowserLikeWebSocket;

// The query to watch. In named mode: a registry with one query at the dotted path --query, whose
// client-side ZQL is the whole --table (a superset of whatever the server's AST selects, so the
// local view shows exactly the rows that synced for it).
function buildQuery() {
  if (!opts.query) return z.query[opts.table];
  const zql = createBuilder(schema);
  const tree = {};
  const path = opts.query.split('.');
  let node = tree;
  for (const key of path.slice(0, -1)) node = node[key] = {};
  node[path.at(-1)] = defineQuery(() => zql[opts.table]);
  let q = defineQueries(tree);
  for (const key of path) q = q[key];
  if (q.queryName !== opts.query) usage(`internal: defined ${q.queryName}, wanted ${opts.query}`);
  return opts.args === undefined ? q() : q(opts.args);
}

const containsSubset = (row, subset) => Object.entries(subset).every(([k, v]) => isDeepStrictEqual(row[k], v));
const print = obj => process.stdout.write(`${JSON.stringify(obj)}\n`);

// Zero's answer to a client whose state the server no longer has (after zero-cache rebuilt its
// replica, e.g. after a schema change) is to reload the page: `onClientStateNotFound` and
// `onUpdateNeeded` default to `location.reload()`, a no-op here. So this client does what a
// browser tab does: it drops its Zero instance, says so ({"event": "reload", ...}), and starts a
// fresh one with an empty store, which syncs from scratch.
let z;
let view;
let last = [];
let done = false;
let reloads = 0;

function start() {
  z = new Zero({
    cacheURL: opts.url,
    schema,
    ...(opts.userId ? { userID: opts.userId } : {}),
    ...(opts.auth ? { auth: opts.auth } : {}),
    // What the client-side query functions get as `ctx` (ours ignore it; an app's would not).
    ...(opts.userId ? { context: { userID: opts.userId } } : {}),
    kvStore: 'mem',
    logLevel: 'warn',
    onClientStateNotFound: () => reload('ClientStateNotFound'),
    onUpdateNeeded: reason => reload(`UpdateNeeded ${reason?.type ?? ''}`),
    // Keep stdout for result lines only.
    logSink: { log: (level, _ctx, ...args) => process.stderr.write(`zero-client ${level}: ${args.map(a => (a instanceof Error ? a.stack : typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`) },
  });
  view = z.materialize(buildQuery());
  view.addListener((data, resultType, error) => {
    if (done) return;
    const rows = JSON.parse(JSON.stringify(data));
    last = rows;
    print({ resultType, rows, ...(error ? { error } : {}) });
    if (resultType === 'error') return;
    if (opts.until ? rows.some(r => containsSubset(r, opts.until)) : resultType === 'complete') {
      finish(0);
    }
  });
}

let reloading = false;
async function reload(reason) {
  if (done || reloading) return;
  reloading = true;
  reloads += 1;
  print({ event: 'reload', reason, reloads });
  const old = z;
  try {
    await Promise.race([old.close(), new Promise(r => setTimeout(r, 2000))]);
  } catch {
    // the old instance is being dropped either way
  }
  // A page reload is not instant either; and the server is usually busy re-syncing.
  setTimeout(() => {
    reloading = false;
    if (!done) start();
  }, 1000);
}

async function finish(code, reason) {
  if (done) return;
  done = true;
  if (reason) process.stderr.write(`zero-client: ${reason}\n`);
  try {
    await Promise.race([z.close(), new Promise(r => setTimeout(r, 2000))]);
  } catch {
    // closing is best effort: the result is already decided
  }
  // Exit only once stdout (then stderr) has taken everything written before: process.exit()
  // right after a write to a pipe can drop the tail of the output.
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

start();

setTimeout(() => {
  finish(1, `timeout after ${opts.timeoutMs} ms: no row of ${opts.query ? `${opts.query} (table ${opts.table})` : opts.table} matched ${JSON.stringify(opts.until ?? 'a complete result')}; last result had ${last.length} rows: ${JSON.stringify(last).slice(0, 2000)}`);
}, opts.timeoutMs).unref?.();
// The timer must keep the process alive even if Zero's sockets do not.
setInterval(() => {}, 1 << 30);
