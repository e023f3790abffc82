//! What to replicate and how, settled once at start-up: the process settings (`settings`), the
//! streaming tuning they carry (`streaming`), and the schema, table mappings and permissions they
//! point to, loaded and compiled (`inputs`).

pub mod inputs;
pub mod settings;
pub mod streaming;
