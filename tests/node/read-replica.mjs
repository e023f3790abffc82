// Dumps zero-cache's SQLite replica as JSON, so tests can compare what zero-cache holds with
// what MongoDB holds. The replica is in wal2 mode, which stock SQLite cannot open, so we copy
// `zero.db*` to a temp dir (never touching the live files zero-cache writes) and open the copy
// with zero-cache's own SQLite build, `@rocicorp/zero-sqlite3`, switching it to a rollback
// journal first.
//
// Usage: node read-replica.mjs [--all] <replica-file>
// Prints {"<table>": [rows...], ...}: every table except SQLite's and zero-cache's internal
// `_zero.*` ones (`--all` keeps those too), plus `_zero.replicationConfig` and
// `_zero.replicationState`. Rows are sorted by primary key (else the first unique index, else
// rowid) and `_0_version` is removed. Integers are printed as bare JSON integers with their
// exact value, also beyond 2^53 (read them with a parser that keeps big integers). json
// columns are printed as stored: JSON text.
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import Database from '@rocicorp/zero-sqlite3';
import { stringify } from 'json-custom-numbers';

const KEEP_INTERNAL = new Set(['_zero.replicationConfig', '_zero.replicationState']);

const args = process.argv.slice(2);
const all = args.includes('--all');
const files = args.filter(a => !a.startsWith('--'));
if (files.length !== 1) {
  process.stderr.write('usage: node read-replica.mjs [--all] <replica-file>\n');
  process.exit(2);
}
const replica = files[0];
const dir = dirname(replica);
const base = basename(replica);

let names;
try {
  names = readdirSync(dir).filter(n => n === base || n.startsWith(`${base}-`));
} catch (e) {
  process.stderr.write(`read-replica: cannot read directory of ${replica}: ${e.message}\n`);
  process.exit(1);
}
if (!names.includes(base)) {
  process.stderr.write(`read-replica: replica file ${replica} does not exist\n`);
  process.exit(1);
}

const quote = id => `"${id.replaceAll('"', '""')}"`;

function dump(file) {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = delete');
    db.defaultSafeIntegers(true);
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
      .all()
      .map(r => r.name)
      .filter(n => all || !n.startsWith('_zero.') || KEEP_INTERNAL.has(n));
    const out = {};
    for (const table of tables) {
      const info = db.prepare(`PRAGMA table_info(${quote(table)})`).all();
      let order = info
        .filter(c => Number(c.pk) > 0)
        .sort((a, b) => Number(a.pk) - Number(b.pk))
        .map(c => c.name);
      if (order.length === 0) {
        const unique = db
          .prepare(`PRAGMA index_list(${quote(table)})`)
          .all()
          .filter(i => Number(i.unique) === 1)
          .sort((a, b) => a.name.localeCompare(b.name));
        if (unique.length > 0) {
          order = db.prepare(`PRAGMA index_info(${quote(unique[0].name)})`).all().map(c => c.name);
        }
      }
      const orderBy = order.length > 0 ? order.map(quote).join(', ') : 'rowid';
      const rows = db.prepare(`SELECT * FROM ${quote(table)} ORDER BY ${orderBy}`).all();
      out[table] = rows.map(row => {
        delete row._0_version;
        for (const [k, v] of Object.entries(row)) {
          if (Buffer.isBuffer(v)) row[k] = { $blob: v.toString('hex') };
        }
        return row;
      });
    }
    return out;
  } finally {
    db.close();
  }
}

// A copy taken while zero-cache writes can be torn; a second copy is then consistent again.
// (No process.exit() after writing: on a pipe, stdout is asynchronous and exit would cut it.)
let lastError;
let done = false;
for (let attempt = 0; attempt < 3; attempt++) {
  const tmp = mkdtempSync(join(tmpdir(), 'read-replica-'));
  try {
    for (const n of names) {
      try {
        copyFileSync(join(dir, n), join(tmp, n));
      } catch (e) {
        if (e.code !== 'ENOENT') throw e; // a WAL file checkpointed away meanwhile
      }
    }
    const out = dump(join(tmp, base));
    process.stdout.write(`${stringify(out, undefined, undefined, (_k, v, type) => (type === 'bigint' ? v.toString() : undefined))}\n`);
    done = true;
  } catch (e) {
    lastError = e;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (done) break;
}
if (!done) {
  process.stderr.write(`read-replica: cannot read ${replica}: ${lastError?.message}\n`);
  process.exitCode = 1;
}
