//! MongoDB change streams → Zero's custom change-source protocol (v0).
//!
//! The binary in `main.rs` is a thin edge around this library so that the integration tests and
//! the benchmark drive the same code. The data flows from the MongoDB side to the Zero side,
//! through the stages of one connection:
//!
//! ```text
//! http::websocket ─▶ replication::session
//!   ├─ no lastWatermark: replication::initial_sync (a find per collection → rows)
//!   └─ resume:           mongo::change_stream → mongo::change_event
//!                        → replication::row_changes → replication::transactions
//!                                        both ─▶ zero::messages ─▶ zero::downstream ─▶ zero-cache
//! ```
//!
//! - `config`: settings, and the schema, mappings and permissions compiled at start-up;
//! - `mongo`: the MongoDB side (change stream, events, cluster times, the replica registry);
//! - `rows`: a MongoDB document → a Zero row (filters, projections, value conversion), pure;
//! - `pipeline`: a document → the rows of a pipeline mapping, and the diff of two versions, pure;
//! - `zero`: the Zero side (protocol messages, the tables of a connection, watermark strings,
//!   the sending half of a socket);
//! - `replication`: what one connection runs between the two sides, and when it must reset;
//! - `http`: the HTTP side (the WebSocket and the endpoints for operators);
//! - `server_state`, `metrics`, `connection_status`: what all of the above share.
//!
//! As in the Postgres change source of rocicorp/mono (in `packages/zero-cache/src`:
//! `services/change-source/pg/initial-sync.ts`, `…/pg/change-source.ts`, and `…/pg/lsn.ts` over
//! `types/lexi-version.ts`), the initial sync, the streaming and the position encoding are kept
//! apart: `replication::initial_sync`, `replication::transactions`, and `mongo::cluster_time`
//! over `zero::lexi_version`.

pub mod config;
pub mod connection_status;
pub mod http;
pub mod metrics;
pub mod mongo;
pub mod pipeline;
pub mod replication;
pub mod rows;
pub mod server_state;
pub mod zero;
