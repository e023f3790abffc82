//! The test harness: starts the *real* services (MongoDB replica set, PostgreSQL, zero-cache
//! 1.9.0, and in [`stack`] the whole ZeroStack) as child processes on 127.0.0.1 and free ports,
//! with their state in temporary folders, and wraps the Node tools in `tests/node` (protocol
//! validation, replica dump, a real Zero client). Used by source-server's integration tests, the
//! app's tests, the local stack (`tests/stack.sh`) and the benchmarks (`tests/bench`).
//!
//! Every process is started in its own process group and stopped by PID; nothing is looked up
//! or killed by name.

pub mod balancer;
pub mod cases;
pub mod cluster;
pub mod http;
pub mod mongo;
pub mod node;
pub mod paths;
pub mod postgres;
pub mod process;
pub mod stack;
pub mod state;
pub mod view_syncers;
pub mod zero_cache;

pub use mongo::Mongo;
pub use node::{
    ZeroClientWait, node_tool, node_tool_with_stdin, read_replica, validate_stream_lines,
    validate_transactions, zero_client_wait,
};
pub use paths::{ensure_installed, node_dir, repo_root};
pub use postgres::Postgres;
pub use process::ManagedProcess;
pub use state::{StateDir, free_port, free_port_block, service_temp_dir};
pub use zero_cache::{ZeroCache, ZeroCacheOptions};
