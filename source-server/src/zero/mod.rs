//! The Zero side: what zero-cache receives and how it is sent.
//!
//! - `messages`: every message of the change-source protocol v0, rendered as JSON text;
//! - `catalog`: the tables one connection replicates (the app's, plus the three zero-cache needs);
//! - `lexi_version`: the watermark string encoding zero-cache orders and parses;
//! - `downstream`: the sending half of a connection, and a recorder for tests.

pub mod catalog;
pub mod downstream;
pub mod lexi_version;
pub mod messages;
