// Run by check-images.sh inside an image, with the image's Node: dlopen()s every native module
// (*.node) under the node_modules folders given, so that a shared library the image lacks shows
// up here and not first in a running stack (zero-cache's syncer loads oxfmt's binding, which
// needs librt, long after it has started). musl builds, other platforms' prebuilds, and modules
// built for another Node ABI are not loadable by this Node anyway and only count as skipped;
// then, if zero-sqlite3 is there, it opens a database in /tmp and runs a query.
'use strict';
const fs = require('fs');
const path = require('path');

let loaded = 0, skipped = 0;
const missing = [];
function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      walk(p);
    } else if (e.isFile() && e.name.endsWith('.node')) {
      if (/musl|darwin|win32|arm64|ia32/.test(p)) { skipped++; continue; }
      try {
        process.dlopen({ exports: {} }, p);
        loaded++;
      } catch (err) {
        if (/cannot open shared object file|undefined symbol|version `GLIBC/.test(err.message)) {
          missing.push(`${p}: ${err.message}`);
        } else {
          skipped++; // e.g. NODE_MODULE_VERSION: built for another Node
        }
      }
    }
  }
}
for (const dir of process.argv.slice(2)) walk(dir);
for (const m of missing) console.log('MISSING', m);
console.log(`native modules: ${loaded} loaded, ${skipped} skipped, ${missing.length} missing a library`);

let sqlite = '';
try {
  const D = require(require.resolve('@rocicorp/zero-sqlite3', { paths: process.argv.slice(2) }));
  const db = new D('/tmp/check.db');
  sqlite = ` sqlite ${db.prepare('select sqlite_version() v').get().v}`;
  db.close();
} catch (err) {
  if (err.code !== 'MODULE_NOT_FOUND') { console.log('MISSING sqlite:', err.message); process.exit(1); }
}
console.log(`node ${process.version}${sqlite}`);
process.exit(missing.length ? 1 : 0);
