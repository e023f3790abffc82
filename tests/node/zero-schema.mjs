// Builds a Zero schema at run time from its JSON form, so a test client sees exactly the schema
// the source publishes (the same file source-server and the app use). Shared by the Node clients
// the tests run, so they all read that JSON the same way.

import { readFileSync } from 'node:fs';
import { boolean, createSchema, json, number, string, table } from '@rocicorp/zero';

// Returns `{ schema, raw }` (raw: the parsed JSON's Zero schema), or calls `fail(message)` with
// a message naming the file and the JSON path of the problem.
export function buildSchema(file, { enableLegacyQueries, fail }) {
  let raw;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    fail(`cannot read schema ${file}: ${e.message}`);
  }
  if (raw && raw.schema && !raw.tables) raw = raw.schema;
  if (!raw || typeof raw.tables !== 'object') fail(`${file}: $.tables: missing; expected a Zero schema as JSON`);
  const builders = { string, number, boolean, json, null: json };
  const tables = Object.entries(raw.tables).map(([key, t]) => {
    let tb = table(t.name ?? key);
    if (t.serverName) tb = tb.from(t.serverName);
    const columns = {};
    for (const [col, c] of Object.entries(t.columns ?? {})) {
      const make = builders[c.type];
      if (!make) fail(`${file}: $.tables.${key}.columns.${col}.type: unknown type ${JSON.stringify(c.type)}`);
      let cb = make();
      if (c.serverName) cb = cb.from(c.serverName);
      if (c.optional) cb = cb.optional();
      columns[col] = cb;
    }
    const pk = t.primaryKey ?? [];
    if (pk.length === 0) fail(`${file}: $.tables.${key}.primaryKey: missing or empty`);
    return tb.columns(columns).primaryKey(...pk);
  });
  return { schema: createSchema({ tables, enableLegacyQueries }), raw };
}
