// Validates downstream change-source protocol messages (source -> zero-cache) with Zero's own
// published valita schema, `v0.changeStreamMessageSchema`, so our tests check the wire contract
// with the code zero-cache 1.9.0 itself uses rather than with our reading of it.
//
// Usage: node validate-stream.mjs [--strict] [--transactions] [FILE...]   (stdin when no FILE)
//   input       one JSON value per line (blank lines are skipped)
//   --strict    reject unknown properties (zero-cache itself parses in "passthrough" mode)
//   --transactions  also check transaction framing: no data outside begin/commit, commit
//               watermark equal to begin's commitWatermark, commit watermarks increasing
// Prints a one-line summary and exits 0; exits 1 naming the first invalid line and the error.
import { readFileSync } from 'node:fs';
import { v0 } from '@rocicorp/zero/change-protocol/v0';
// zero-cache parses frames with json-custom-numbers and turns integers beyond 2^53 into BigInt
// (shared/src/bigint-json.ts); we do the same so int8 values keep their exact value.
import { parse as parseJson } from 'json-custom-numbers';

function numberParser(_key, text) {
  const n = +text;
  if (Number.isSafeInteger(n)) return n;
  if (text.includes('.') || text.includes('e') || text.includes('E')) return n;
  return BigInt(text);
}

function usage(msg) {
  process.stderr.write(`validate-stream: ${msg}\nusage: node validate-stream.mjs [--strict] [--transactions] [FILE...]\n`);
  process.exit(2);
}

const files = [];
let mode = 'passthrough';
let checkTransactions = false;
for (const arg of process.argv.slice(2)) {
  if (arg === '--strict') mode = 'strict';
  else if (arg === '--transactions') checkTransactions = true;
  else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
  else files.push(arg);
}

const inputs = files.length === 0 ? [['<stdin>', readFileSync(0, 'utf8')]] : files.map(f => {
  try {
    return [f, readFileSync(f, 'utf8')];
  } catch (e) {
    usage(`cannot read ${f}: ${e.message}`);
  }
});

function fail(origin, lineNo, line, problem) {
  const shown = line.length > 300 ? `${line.slice(0, 300)}...` : line;
  process.stderr.write(`${origin}:${lineNo}: invalid message: ${problem}\n  line: ${shown}\n`);
  process.exit(1);
}

// The top-level schema is a union, whose error says only "validation failed". The verdict is
// always the full schema's; this only re-checks the part the message claims to be, with the
// specific exported schema, so the error names the property that is wrong.
const specific = {
  begin: v0.beginSchema,
  commit: v0.commitSchema,
  rollback: v0.rollbackSchema,
  control: v0.resetRequiredSchema,
  insert: v0.insertSchema,
  update: v0.updateSchema,
  delete: v0.deleteSchema,
  truncate: v0.truncateSchema,
  backfill: v0.backfillSchema,
  'backfill-completed': v0.backfillCompletedSchema,
  'create-table': v0.createTableSchema,
  'rename-table': v0.renameTableSchema,
  'update-table-metadata': v0.updateTableMetadataSchema,
  'add-column': v0.addColumnSchema,
  'update-column': v0.updateColumnSchema,
  'drop-column': v0.dropColumnSchema,
  'drop-table': v0.dropTableSchema,
  'create-index': v0.createIndexSchema,
  'drop-index': v0.dropIndexSchema,
};
function diagnose(msg) {
  if (!Array.isArray(msg)) return ' (a message must be a JSON array)';
  const kind = msg[0];
  if (kind === 'status') {
    const r = v0.downstreamStatusMessageSchema.try(msg, { mode });
    return r.ok ? '' : `; as a status message: ${r.message}`;
  }
  const key = kind === 'data' ? msg[1]?.tag : kind;
  const schema = specific[key];
  if (!schema) {
    return kind === 'data'
      ? `; unknown data tag ${JSON.stringify(msg[1]?.tag)}`
      : `; unknown message type ${JSON.stringify(kind)}`;
  }
  const r = schema.try(msg[1], { mode });
  if (!r.ok) return `; as ${key}: ${r.message} (in element 1)`;
  const expectedLength = kind === 'data' || kind === 'rollback' || kind === 'control' ? 2 : 3;
  if (msg.length !== expectedLength) return `; a ${kind} message has ${expectedLength} elements, got ${msg.length}`;
  return kind === 'begin' || kind === 'commit' ? ` (check element 2: ${kind === 'begin' ? '{commitWatermark: string}' : '{watermark: string}'})` : '';
}

const counts = new Map();
const bump = key => counts.set(key, (counts.get(key) ?? 0) + 1);
let total = 0;
// Transaction framing state (only with --transactions).
let openBegin = null;
let lastCommit = null;

for (const [origin, text] of inputs) {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const lineNo = i + 1;
    let msg;
    try {
      msg = parseJson(line, undefined, numberParser);
    } catch (e) {
      fail(origin, lineNo, line, `not JSON: ${e.message}`);
    }
    try {
      v0.changeStreamMessageSchema.parse(msg, { mode });
    } catch (e) {
      fail(origin, lineNo, line, `${e.message}${diagnose(msg)}`);
    }
    total++;
    const kind = msg[0];
    bump(kind === 'data' || kind === 'control' ? `${kind}:${msg[1].tag}` : kind);

    if (checkTransactions) {
      if (kind === 'begin') {
        if (openBegin) fail(origin, lineNo, line, `begin while the transaction begun at line ${openBegin.line} is still open`);
        const w = msg[2].commitWatermark;
        if (lastCommit !== null && !(w > lastCommit)) {
          fail(origin, lineNo, line, `commitWatermark ${w} is not after the previous commit ${lastCommit}`);
        }
        openBegin = { line: lineNo, watermark: w };
      } else if (kind === 'data') {
        if (!openBegin) fail(origin, lineNo, line, 'data outside a transaction');
      } else if (kind === 'commit') {
        if (!openBegin) fail(origin, lineNo, line, 'commit without begin');
        if (msg[2].watermark !== openBegin.watermark) {
          fail(origin, lineNo, line, `commit watermark ${msg[2].watermark} differs from begin's commitWatermark ${openBegin.watermark} (line ${openBegin.line})`);
        }
        lastCommit = msg[2].watermark;
        openBegin = null;
      } else if (kind === 'rollback') {
        if (!openBegin) fail(origin, lineNo, line, 'rollback without begin');
        openBegin = null;
      }
    }
  }
}

const summary = [...counts.entries()].map(([k, n]) => `${k}=${n}`).join(' ');
process.stdout.write(`ok: ${total} valid messages (${mode}${checkTransactions ? ', transactions checked' : ''}) ${summary}\n`);
