//! The environment variables the binaries read, named once.
//!
//! The operator renders Deployments that set these variables, and each binary's command line
//! reads them; when both sides take the names from here, a renamed variable is a compile error
//! instead of a pod that starts with its setting silently missing.

/// `source-server`'s variables (each is also a `--flag`; see `source-server --help`).
pub mod source {
    /// YAML or JSON settings file.
    pub const CONFIG_FILE: &str = "CONFIG_FILE";
    /// MongoDB connection string (a replica set).
    pub const MONGODB_URI: &str = "MONGODB_URI";
    /// Database to publish.
    pub const MONGODB_DATABASE: &str = "MONGODB_DATABASE";
    /// Listen address.
    pub const HOST: &str = "HOST";
    /// Listen port.
    pub const PORT: &str = "PORT";
    /// Zero schema file.
    pub const SCHEMA_FILE: &str = "ZERO_SCHEMA_FILE";
    /// Zero schema URL.
    pub const SCHEMA_URL: &str = "ZERO_SCHEMA_URL";
    /// Table mappings file.
    pub const TABLE_MAPPINGS_FILE: &str = "ZERO_TABLE_MAPPINGS_FILE";
    /// Table mappings URL.
    pub const TABLE_MAPPINGS_URL: &str = "ZERO_TABLE_MAPPINGS_URL";
    /// Permissions file.
    pub const PERMISSIONS_FILE: &str = "ZERO_PERMISSIONS_FILE";
    /// Permissions URL.
    pub const PERMISSIONS_URL: &str = "ZERO_PERMISSIONS_URL";
    /// The token zero-cache sends as `?token=`.
    pub const SOURCE_TOKEN: &str = "SOURCE_TOKEN";
    /// Collection published as `<app>_<shard>.clients`.
    pub const CLIENTS_COLLECTION: &str = "CLIENTS_COLLECTION";
    /// Collection published as `<app>_<shard>.mutations`.
    pub const MUTATIONS_COLLECTION: &str = "MUTATIONS_COLLECTION";
    /// Collection of the replica registry.
    pub const REGISTRY_COLLECTION: &str = "REGISTRY_COLLECTION";
    /// Hours after which a replica registry entry no zero-cache has used is deleted.
    pub const REGISTRY_RETENTION_HOURS: &str = "REGISTRY_RETENTION_HOURS";
    /// How updates get whole documents.
    pub const FULL_DOCUMENT: &str = "FULL_DOCUMENT";
    /// Coalescing limit in rows.
    pub const MAX_ROWS_PER_TRANSACTION: &str = "MAX_ROWS_PER_TRANSACTION";
    /// Coalescing limit in bytes.
    pub const MAX_BYTES_PER_TRANSACTION: &str = "MAX_BYTES_PER_TRANSACTION";
    /// Log level.
    pub const LOG_LEVEL: &str = "LOG_LEVEL";
    /// `text` or `json`.
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    /// Serve `/metrics`.
    pub const METRICS_ENABLED: &str = "METRICS_ENABLED";
}

/// The ZRocket app's variables (each is also a `--flag`; see `zrocket serve --help`).
pub mod app {
    /// Listen port.
    pub const PORT: &str = "PORT";
    /// MongoDB connection string (a replica set: mutations run in transactions).
    pub const MONGODB_URI: &str = "MONGODB_URI";
    /// Database of the app's collections.
    pub const MONGODB_DATABASE: &str = "MONGODB_DATABASE";
    /// Formerly the HMAC key of the login tokens. Sessions are opaque tokens stored in MongoDB
    /// now, so the app ignores it (still accepted, with a warning, while deployments set it).
    pub const AUTH_SECRET: &str = "AUTH_SECRET";
    /// The zero-cache URL browsers use.
    pub const PUBLIC_ZERO_URL: &str = "PUBLIC_ZERO_URL";
    /// When set, the mutate and query endpoints require it as `X-Api-Key`.
    pub const ZERO_API_KEY: &str = "ZERO_API_KEY";
    /// Folder of the built web UI.
    pub const WEB_DIR: &str = "WEB_DIR";
    /// `true` turns on the password-less dev login (local use only; off by default).
    pub const DEV_LOGIN: &str = "DEV_LOGIN";
    /// OIDC issuer (`iss`) whose ID tokens the app accepts; unset means no external sign-in.
    pub const OIDC_ISSUER: &str = "OIDC_ISSUER";
    /// The issuer's JWKS URL (its signing keys).
    pub const OIDC_JWKS_URL: &str = "OIDC_JWKS_URL";
    /// The audience (`aud`) the tokens must name: the app's client id at the provider.
    pub const OIDC_AUDIENCE: &str = "OIDC_AUDIENCE";
    /// `true` when the app is served over HTTPS (directly or behind a TLS-terminating proxy):
    /// the session cookie gets `Secure`.
    pub const COOKIE_SECURE: &str = "COOKIE_SECURE";
    /// `true` when a reverse proxy is in front: the client address is the first
    /// `X-Forwarded-For` hop and `X-Forwarded-Proto: https` makes the cookie `Secure`.
    pub const TRUST_PROXY: &str = "TRUST_PROXY";
    /// The session cookie's `Domain`: the parent domain the app and zero-cache share when they
    /// are served on two host names (e.g. `example.com` for `chat.` and `zero.example.com`).
    pub const COOKIE_DOMAIN: &str = "COOKIE_DOMAIN";
    /// Failed sign-ins per username within the window before it is refused (default 5).
    pub const LOGIN_MAX_FAILURES_PER_USER: &str = "LOGIN_MAX_FAILURES_PER_USER";
    /// Failed sign-ins per client address within the window before it is refused (default 20).
    pub const LOGIN_MAX_FAILURES_PER_ADDRESS: &str = "LOGIN_MAX_FAILURES_PER_ADDRESS";
    /// The sliding window of those limits, in seconds (default 300).
    pub const LOGIN_FAILURE_WINDOW_SECS: &str = "LOGIN_FAILURE_WINDOW_SECS";
    /// Log level.
    pub const LOG_LEVEL: &str = "LOG_LEVEL";
    /// `text` or `json`.
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
}
