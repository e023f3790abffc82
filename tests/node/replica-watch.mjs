// Watches zero-cache's live replica for the benchmarks, without copying it: read-replica.mjs
// dumps every row and is far too slow for 100k rows. The replica is SQLite in wal2 mode, which
// only zero-cache's own SQLite build (`@rocicorp/zero-sqlite3`) can read; we open the live file
// read-only, so zero-cache's writes are never disturbed, and poll.
//
// Usage:
//   node replica-watch.mjs count <replica-file> <table> <target> [interval-ms]
//     Polls until the table holds <target> rows; prints one JSON line
//     {"count": N, "atMs": <epoch ms when it was first seen>, "polls": P}.
//   node replica-watch.mjs latency <replica-file> <table> <column> <expected> [interval-ms]
//     Prints "ready" once it has noted the current last rowid, then, for every row that
//     appears after that, one line "<column value> <epoch ms when first seen>", until
//     <expected> new rows were seen; then "done".
// Times are epoch milliseconds with sub-millisecond precision (performance.timeOrigin + now()).
// Waits (up to 10 minutes) for the replica file and the table to exist. Exits 1 on errors.
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import Database from '@rocicorp/zero-sqlite3';

const now = () => performance.timeOrigin + performance.now();
const sleep = ms => new Promise(r => setTimeout(r, ms));
const quote = id => `"${id.replaceAll('"', '""')}"`;
const GIVE_UP_MS = 10 * 60 * 1000;

function usage(msg) {
  process.stderr.write(`replica-watch: ${msg}\n`);
  process.stderr.write(
    'usage: node replica-watch.mjs count <replica-file> <table> <target> [interval-ms]\n' +
      '       node replica-watch.mjs latency <replica-file> <table> <column> <expected> [interval-ms]\n',
  );
  process.exit(2);
}

function positiveInt(name, text, fallback) {
  if (text === undefined && fallback !== undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) usage(`${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return n;
}

// Opens the replica once the file and the table exist (zero-cache creates both during its
// initial sync). Read-only, so we never take a write lock on zero-cache's file.
async function open(file, table) {
  const started = now();
  let lastError = 'replica file does not exist yet';
  while (now() - started < GIVE_UP_MS) {
    if (existsSync(file)) {
      let db;
      try {
        db = new Database(file, { readonly: true, fileMustExist: true });
        const found = db
          .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
          .get(table);
        if (found) return db;
        lastError = `table ${table} not in the replica yet`;
      } catch (e) {
        lastError = e.message;
      }
      db?.close();
    }
    await sleep(20);
  }
  process.stderr.write(`replica-watch: gave up waiting for ${file}: ${lastError}\n`);
  process.exit(1);
}

async function count(file, table, target, interval) {
  const db = await open(file, table);
  // count(*) walks a whole index (milliseconds at 100k rows), which would steal CPU from
  // zero-cache while it is being measured. Rows here are only ever added, each with the next
  // rowid, so the cheap max(rowid) tells when to check; count(*) then confirms.
  const maxRowid = db.prepare(`SELECT coalesce(max(rowid), 0) AS n FROM ${quote(table)}`);
  const countAll = db.prepare(`SELECT count(*) AS n FROM ${quote(table)}`);
  let polls = 0;
  for (;;) {
    polls++;
    if (maxRowid.get().n >= target) {
      const at = now();
      const n = countAll.get().n;
      if (n >= target) {
        process.stdout.write(JSON.stringify({ count: n, atMs: at, polls }) + '\n');
        return;
      }
    }
    await sleep(interval);
  }
}

async function latency(file, table, column, expected, interval) {
  const db = await open(file, table);
  let last = db.prepare(`SELECT coalesce(max(rowid), 0) AS r FROM ${quote(table)}`).get().r;
  const stmt = db.prepare(
    `SELECT rowid AS r, ${quote(column)} AS v FROM ${quote(table)} WHERE rowid > ? ORDER BY rowid`,
  );
  process.stdout.write('ready\n');
  let seen = 0;
  const out = [];
  while (seen < expected) {
    const rows = stmt.all(last);
    if (rows.length > 0) {
      const at = now();
      for (const row of rows) {
        out.push(`${row.v} ${at.toFixed(3)}`);
        last = row.r;
      }
      seen += rows.length;
      if (out.length >= 256) process.stdout.write(out.splice(0).join('\n') + '\n');
    }
    // A 1 ms timer: the poll itself (an indexed rowid range) costs microseconds.
    await sleep(interval);
  }
  if (out.length > 0) process.stdout.write(out.join('\n') + '\n');
  process.stdout.write('done\n');
}

const [mode, file, table, ...rest] = process.argv.slice(2);
if (!mode || !file || !table) usage('missing arguments');
if (mode === 'count') {
  await count(file, table, positiveInt('target', rest[0]), positiveInt('interval-ms', rest[1], 20));
} else if (mode === 'latency') {
  if (!rest[0]) usage('missing <column>');
  await latency(file, table, rest[0], positiveInt('expected', rest[1]), positiveInt('interval-ms', rest[2], 1));
} else {
  usage(`unknown mode ${JSON.stringify(mode)}`);
}
// No process.exit() here: it would drop stdout writes still queued for a busy pipe, cutting the
// last lines (and "done") short. Nothing else keeps the process alive, so it ends by itself.
