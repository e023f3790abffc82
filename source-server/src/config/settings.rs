//! Settings of the source server: command line and environment first, then an optional YAML or
//! JSON config file, then defaults.
//!
//! Secrets (the MongoDB URI, the shared token) are kept out of `Debug` output so that no log line
//! or error can echo them.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::Deserialize;
pub use zerostack_spec::secret::Secret;
use zerostack_spec::{bookkeeping, env::source as env};

use crate::config::streaming::{FullDocument, StreamLimits};

#[derive(Debug, Parser)]
#[command(
    name = "source-server",
    version,
    about = "Streams MongoDB changes to Zero's zero-cache (custom change source protocol v0).",
    long_about = "Streams MongoDB changes to Zero's zero-cache over the custom change-source \
protocol v0 at /changes/v0/stream. Every setting can come from the command line, the environment \
variable shown, or a YAML/JSON file given with --config (keys in snake_case, e.g. mongodb_uri, \
schema_file, table_mappings_url, or inline `schema:`/`table_mappings:`/`permissions:` objects)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// YAML or JSON file with settings (same names as the flags, snake_case).
    #[arg(long, env = env::CONFIG_FILE, global = true)]
    pub config: Option<PathBuf>,
    /// MongoDB connection string; must reach a replica set (change streams need one).
    #[arg(long, env = env::MONGODB_URI, hide_env_values = true, global = true)]
    pub mongodb_uri: Option<Secret>,
    /// Database to read (default: the database in MONGODB_URI).
    #[arg(long, env = env::MONGODB_DATABASE, global = true)]
    pub mongodb_database: Option<String>,
    /// Address to listen on (default 0.0.0.0).
    #[arg(long, env = env::HOST, global = true)]
    pub host: Option<String>,
    /// Port to listen on (default 8001).
    #[arg(long, env = env::PORT, global = true)]
    pub port: Option<u16>,
    /// Zero schema JSON file (what JSON.stringify(schema) gives).
    #[arg(long, env = env::SCHEMA_FILE, global = true)]
    pub schema_file: Option<PathBuf>,
    /// Zero schema JSON URL.
    #[arg(long, env = env::SCHEMA_URL, global = true)]
    pub schema_url: Option<InputUrl>,
    /// Table mappings JSON file.
    #[arg(long, env = env::TABLE_MAPPINGS_FILE, global = true)]
    pub table_mappings_file: Option<PathBuf>,
    /// Table mappings JSON URL.
    #[arg(long, env = env::TABLE_MAPPINGS_URL, global = true)]
    pub table_mappings_url: Option<InputUrl>,
    /// Compiled Zero permissions JSON file (published as <app>.permissions).
    #[arg(long, env = env::PERMISSIONS_FILE, global = true)]
    pub permissions_file: Option<PathBuf>,
    /// Compiled Zero permissions JSON URL.
    #[arg(long, env = env::PERMISSIONS_URL, global = true)]
    pub permissions_url: Option<InputUrl>,
    /// Shared secret zero-cache must send as `?token=` in ZERO_UPSTREAM_DB.
    #[arg(long, env = env::SOURCE_TOKEN, hide_env_values = true, global = true)]
    pub source_token: Option<Secret>,
    /// Collection published as <app>_<shard>.clients (default zero_clients).
    #[arg(long, env = env::CLIENTS_COLLECTION, global = true)]
    pub clients_collection: Option<String>,
    /// Collection published as <app>_<shard>.mutations (default zero_mutations).
    #[arg(long, env = env::MUTATIONS_COLLECTION, global = true)]
    pub mutations_collection: Option<String>,
    /// Collection holding the replica registry (default zerostack_replicas).
    #[arg(long, env = env::REGISTRY_COLLECTION, global = true)]
    pub registry_collection: Option<String>,
    /// Hours after which a replica registry entry no zero-cache has used is deleted (default
    /// 720, i.e. 30 days).
    #[arg(long, env = env::REGISTRY_RETENTION_HOURS, global = true)]
    pub registry_retention_hours: Option<u64>,
    /// How updates get whole documents: updateLookup (default), whenAvailable or required
    /// (the last two use post-images, MongoDB 6.0+).
    #[arg(long, env = env::FULL_DOCUMENT, global = true, value_parser = parse_full_document)]
    pub full_document: Option<FullDocument>,
    /// Most row changes coalesced into one Zero transaction under backlog (default 2000).
    #[arg(long, env = env::MAX_ROWS_PER_TRANSACTION, global = true)]
    pub max_rows_per_transaction: Option<usize>,
    /// Most bytes buffered for one Zero transaction (default 4 MiB).
    #[arg(long, env = env::MAX_BYTES_PER_TRANSACTION, global = true)]
    pub max_bytes_per_transaction: Option<usize>,
    /// Log level: error, warn, info, debug, trace (default info).
    #[arg(long, env = env::LOG_LEVEL, global = true)]
    pub log_level: Option<String>,
    /// Log format: text or json (default text).
    #[arg(long, env = env::LOG_FORMAT, global = true)]
    pub log_format: Option<String>,
    /// Serve Prometheus metrics on /metrics (default true).
    #[arg(long, env = env::METRICS_ENABLED, global = true)]
    pub metrics_enabled: Option<bool>,
}

#[derive(Debug, Subcommand, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Serve the change stream (the default).
    Serve,
    /// Validate the configuration, schema and mappings, print a summary and exit.
    Check,
}

fn parse_full_document(s: &str) -> Result<FullDocument, String> {
    match s {
        "updateLookup" => Ok(FullDocument::UpdateLookup),
        "whenAvailable" => Ok(FullDocument::WhenAvailable),
        "required" => Ok(FullDocument::Required),
        other => Err(format!(
            "unknown full-document mode {other:?} (expected updateLookup, whenAvailable or required)"
        )),
    }
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    mongodb_uri: Option<Secret>,
    mongodb_database: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    schema_file: Option<PathBuf>,
    schema_url: Option<InputUrl>,
    schema: Option<serde_json::Value>,
    table_mappings_file: Option<PathBuf>,
    table_mappings_url: Option<InputUrl>,
    table_mappings: Option<serde_json::Value>,
    permissions_file: Option<PathBuf>,
    permissions_url: Option<InputUrl>,
    permissions: Option<serde_json::Value>,
    source_token: Option<Secret>,
    clients_collection: Option<String>,
    mutations_collection: Option<String>,
    registry_collection: Option<String>,
    registry_retention_hours: Option<u64>,
    full_document: Option<FullDocument>,
    stream: Option<StreamLimits>,
    snapshot_batch_size: Option<u32>,
    log_level: Option<String>,
    log_format: Option<String>,
    metrics_enabled: Option<bool>,
}

/// Where one input document comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    File(PathBuf),
    Url(InputUrl),
    Inline(serde_json::Value),
}

/// A URL input (`ZERO_SCHEMA_URL`, …). It may carry credentials (`https://user:pw@host/…?token=…`),
/// so its `Debug` shows it the way error messages do, without user info and query; the whole URL
/// takes an explicit [`InputUrl::as_str`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct InputUrl(String);

impl InputUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// clap builds an [`InputUrl`] through this.
impl From<String> for InputUrl {
    fn from(s: String) -> InputUrl {
        InputUrl(s)
    }
}

impl std::fmt::Debug for InputUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::config::inputs::display_url(&self.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mongodb_uri: Secret,
    pub mongodb_database: Option<String>,
    pub host: String,
    pub port: u16,
    pub schema: Input,
    pub table_mappings: Option<Input>,
    pub permissions: Option<Input>,
    pub source_token: Option<Secret>,
    pub clients_collection: String,
    pub mutations_collection: String,
    pub registry_collection: String,
    /// Registry entries unused this long are deleted.
    pub registry_retention: std::time::Duration,
    pub full_document: FullDocument,
    pub stream: StreamLimits,
    pub snapshot_batch_size: u32,
    pub log_level: String,
    pub log_format: LogFormat,
    pub metrics_enabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

fn pick_input(
    what: &str,
    file: Option<PathBuf>,
    url: Option<InputUrl>,
    inline: Option<serde_json::Value>,
) -> Result<Option<Input>, ConfigError> {
    let given = [file.is_some(), url.is_some(), inline.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(ConfigError::Invalid(format!(
            "{what}: give only one of a file, a URL or an inline value"
        )));
    }
    Ok(file
        .map(Input::File)
        .or(url.map(Input::Url))
        .or(inline.map(Input::Inline)))
}

impl Settings {
    /// Merges the command line/environment over the config file over the defaults.
    pub fn resolve(cli: &Cli) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(p) => read_file_settings(p)?,
            None => FileSettings::default(),
        };
        // A file/URL given on the command line or in the environment replaces an inline value
        // or another source from the file, rather than conflicting with it.
        let (schema_file, schema_url, schema_inline) =
            if cli.schema_file.is_some() || cli.schema_url.is_some() {
                (cli.schema_file.clone(), cli.schema_url.clone(), None)
            } else {
                (file.schema_file, file.schema_url, file.schema)
            };
        let (mappings_file, mappings_url, mappings_inline) =
            if cli.table_mappings_file.is_some() || cli.table_mappings_url.is_some() {
                (
                    cli.table_mappings_file.clone(),
                    cli.table_mappings_url.clone(),
                    None,
                )
            } else {
                (
                    file.table_mappings_file,
                    file.table_mappings_url,
                    file.table_mappings,
                )
            };
        let (perm_file, perm_url, perm_inline) =
            if cli.permissions_file.is_some() || cli.permissions_url.is_some() {
                (
                    cli.permissions_file.clone(),
                    cli.permissions_url.clone(),
                    None,
                )
            } else {
                (
                    file.permissions_file,
                    file.permissions_url,
                    file.permissions,
                )
            };
        let schema = pick_input("schema", schema_file, schema_url, schema_inline)?.ok_or_else(|| {
            ConfigError::Invalid(
                "no schema: set ZERO_SCHEMA_FILE or ZERO_SCHEMA_URL (or `schema` in the config file)".into(),
            )
        })?;
        let mongodb_uri = cli
            .mongodb_uri
            .clone()
            .or(file.mongodb_uri)
            .ok_or_else(|| {
                ConfigError::Invalid(
                    "no MongoDB: set MONGODB_URI (a replica set connection string)".into(),
                )
            })?;
        let log_format = match cli
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into())
            .as_str()
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "LOG_FORMAT {other:?} is not text or json"
                )));
            }
        };
        let mut stream = file.stream.unwrap_or_default();
        if let Some(n) = cli.max_rows_per_transaction {
            stream.max_rows_per_transaction = n;
        }
        if let Some(n) = cli.max_bytes_per_transaction {
            stream.max_bytes_per_transaction = n;
        }
        if stream.max_rows_per_transaction == 0 || stream.max_bytes_per_transaction == 0 {
            return Err(ConfigError::Invalid(
                "the per-transaction row and byte limits must be positive".into(),
            ));
        }
        let registry_retention = match cli
            .registry_retention_hours
            .or(file.registry_retention_hours)
        {
            None => crate::mongo::replica_registry::DEFAULT_RETENTION,
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "REGISTRY_RETENTION_HOURS must be at least 1".into(),
                ));
            }
            Some(h) => std::time::Duration::from_secs(h.saturating_mul(3600)),
        };
        let token = cli
            .source_token
            .clone()
            .or(file.source_token)
            .filter(|t| !t.is_empty());
        Ok(Settings {
            mongodb_uri,
            mongodb_database: cli.mongodb_database.clone().or(file.mongodb_database),
            host: cli
                .host
                .clone()
                .or(file.host)
                .unwrap_or_else(|| "0.0.0.0".into()),
            port: cli.port.or(file.port).unwrap_or(8001),
            schema,
            table_mappings: pick_input(
                "table mappings",
                mappings_file,
                mappings_url,
                mappings_inline,
            )?,
            permissions: pick_input("permissions", perm_file, perm_url, perm_inline)?,
            source_token: token,
            clients_collection: cli
                .clients_collection
                .clone()
                .or(file.clients_collection)
                .unwrap_or_else(|| bookkeeping::CLIENTS_COLLECTION.into()),
            mutations_collection: cli
                .mutations_collection
                .clone()
                .or(file.mutations_collection)
                .unwrap_or_else(|| bookkeeping::MUTATIONS_COLLECTION.into()),
            registry_collection: cli
                .registry_collection
                .clone()
                .or(file.registry_collection)
                .unwrap_or_else(|| "zerostack_replicas".into()),
            registry_retention,
            full_document: cli.full_document.or(file.full_document).unwrap_or_default(),
            stream,
            snapshot_batch_size: file.snapshot_batch_size.unwrap_or(1000),
            log_level: cli
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            log_format,
            metrics_enabled: cli.metrics_enabled.or(file.metrics_enabled).unwrap_or(true),
        })
    }
}

fn read_file_settings(path: &Path) -> Result<FileSettings, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: shown.clone(),
        message: format!("cannot read it: {e}"),
    })?;
    // JSON is (for our purposes) YAML, so one parser reads both.
    serde_yaml::from_str(&text).map_err(|e| ConfigError::File {
        path: shown,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["source-server"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap()
    }

    #[test]
    fn defaults_and_required_settings() {
        let s = Settings::resolve(&cli(&[
            "--mongodb-uri",
            "mongodb://u:p@h/db",
            "--schema-file",
            "s.json",
        ]))
        .unwrap();
        assert_eq!(s.port, 8001);
        assert_eq!(s.clients_collection, "zero_clients");
        assert_eq!(s.schema, Input::File("s.json".into()));
        assert!(
            !format!("{s:?}").contains("u:p"),
            "the URI must never be printed"
        );
        let e = Settings::resolve(&cli(&["--mongodb-uri", "mongodb://h/db"])).unwrap_err();
        assert!(e.to_string().contains("ZERO_SCHEMA_FILE"), "{e}");
        let e = Settings::resolve(&cli(&["--schema-file", "s.json"])).unwrap_err();
        assert!(e.to_string().contains("MONGODB_URI"), "{e}");
    }

    const URI: &str = "mongodb://zs-user:Pa55-w0rd-Xq7@127.0.0.1:27017/db?replicaSet=rs0";
    const PASSWORD: &str = "Pa55-w0rd-Xq7";
    const TOKEN: &str = "tok-3Fz9-s3cret";
    const URL: &str = "https://u:urlpw-77q@h.example/schema.json?token=urltok-88q";

    fn assert_hidden(what: &str, shown: &str) {
        for secret in [URI, PASSWORD, TOKEN, "urlpw-77q", "urltok-88q"] {
            assert!(!shown.contains(secret), "{what} prints {secret:?}: {shown}");
        }
    }

    #[test]
    fn no_settings_type_prints_the_uri_the_token_or_url_credentials() {
        let c = cli(&[
            "--mongodb-uri",
            URI,
            "--source-token",
            TOKEN,
            "--schema-url",
            URL,
        ]);
        // The values did arrive, so the checks below are not vacuous.
        assert_eq!(c.mongodb_uri.as_ref().map(Secret::expose), Some(URI));
        assert_eq!(c.source_token.as_ref().map(Secret::expose), Some(TOKEN));
        assert_hidden("Cli", &format!("{c:?}"));
        let s = Settings::resolve(&c).unwrap();
        assert_eq!(s.mongodb_uri.expose(), URI);
        assert!(s.source_token.as_ref().unwrap().matches(TOKEN));
        assert_eq!(s.schema, Input::Url(InputUrl::from(URL.to_string())));
        let shown = format!("{s:?}");
        assert_hidden("Settings", &shown);
        assert!(
            shown.contains("https://h.example/schema.json"),
            "the URL's harmless part is still shown: {shown}"
        );

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(
            &p,
            format!("mongodb_uri: {URI:?}\nsource_token: {TOKEN:?}\nschema_url: {URL:?}\n"),
        )
        .unwrap();
        let f = read_file_settings(&p).unwrap();
        assert_eq!(f.mongodb_uri.as_ref().map(Secret::expose), Some(URI));
        assert_eq!(f.source_token.as_ref().map(Secret::expose), Some(TOKEN));
        assert_hidden("FileSettings", &format!("{f:?}"));
        let s = Settings::resolve(&cli(&["--config", p.to_str().unwrap()])).unwrap();
        assert!(s.source_token.as_ref().unwrap().matches(TOKEN));
        assert_hidden("Settings from a file", &format!("{s:?}"));
    }

    /// main.rs hands the URI to the driver's `ClientOptions`; a `{:?}` of those must not print
    /// the password either (the driver redacts its `Credential` and skips the original URI).
    #[tokio::test]
    async fn the_drivers_client_options_do_not_print_the_password() {
        let options = mongodb::options::ClientOptions::parse(URI).await.unwrap();
        assert!(options.credential.is_some(), "the URI has a credential");
        assert_hidden("ClientOptions", &format!("{options:?}"));
    }

    #[test]
    fn config_file_supplies_inline_inputs_and_rejects_typos() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "mongodb_uri: mongodb://h/db\nschema: {tables: {}}\nstream: {maxRowsPerTransaction: 5}\nport: 9000\n").unwrap();
        let s = Settings::resolve(&cli(&["--config", p.to_str().unwrap()])).unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.stream.max_rows_per_transaction, 5);
        assert!(matches!(s.schema, Input::Inline(_)));
        std::fs::write(&p, "mongodb_uri: x\nshema_file: s.json\n").unwrap();
        let e = Settings::resolve(&cli(&["--config", p.to_str().unwrap()])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("c.yaml") && msg.contains("shema_file"),
            "{msg}"
        );
    }
}
