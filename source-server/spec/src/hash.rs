//! The configuration hash: the one value that says "the configuration a replica was built from".
//!
//! The source records it for every replica it builds and answers `reset-required` when a resume
//! comes from a replica built under another one; the operator puts it on the change-source pods
//! and in the ZeroStack's status, and names the rendered schema ConfigMap after it. Because all
//! of them compute it here, the operator's `status.schemaHash` is the source's `configHash`.
//!
//! It covers what shapes the replica: the schema, the mapping entries (not an export wrapper or
//! its metadata: an `exportedAt` timestamp must not force a re-sync), the permissions and the
//! bookkeeping collections. JSON is hashed in canonical form (object keys sorted at every level,
//! no whitespace), so reordering keys in a file changes nothing.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bookkeeping::Bookkeeping;
use crate::mapping::TableMappings;
use crate::schema::Schema;

/// The configuration hash (24 lowercase hex digits).
pub fn config_hash(
    schema: &Schema,
    mappings: &TableMappings,
    permissions: Option<&Value>,
    bookkeeping: &Bookkeeping,
) -> String {
    let parts = [
        serde_json::to_value(schema).unwrap_or(Value::Null),
        serde_json::to_value(&mappings.mappings).unwrap_or(Value::Null),
        permissions.cloned().unwrap_or(Value::Null),
    ];
    let mut text = String::new();
    canonical(&Value::Array(parts.to_vec()), &mut text);
    let content = hex::encode(Sha256::digest(text.as_bytes()));
    // Content first, then the collections: the form replicas have been registered under.
    short_hash(&json!([
        content,
        bookkeeping.clients_collection,
        bookkeeping.mutations_collection
    ]))
}

/// The first 12 bytes of the sha256 of `v`'s compact JSON text, as hex (key order as given).
pub fn short_hash(v: &Value) -> String {
    let digest = Sha256::digest(v.to_string().as_bytes());
    hex::encode(&digest[..12])
}

/// Writes `v` as JSON with object keys sorted.
pub fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(it, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
