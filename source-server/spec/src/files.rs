//! The file names of an exported configuration.
//!
//! `zrocket export` writes these files, the operator keeps them as the keys of the ConfigMaps it
//! reads and renders, and the change source is pointed at them; one spelling for all three.

/// The Zero schema.
pub const SCHEMA: &str = "schema.json";
/// The table mappings.
pub const TABLE_MAPPINGS: &str = "table-mappings.json";
/// The compiled permissions.
pub const PERMISSIONS: &str = "permissions.json";
