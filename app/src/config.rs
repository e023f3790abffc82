//! Runtime configuration of the ZRocket server, read from the environment.
//!
//! One place decides which variables exist, their defaults, and which are required, so the
//! rest of the code receives a validated `Config`. Its `Debug` output redacts the secrets and
//! the MongoDB URI (which may carry credentials), so it is safe to log.

use std::fmt;
use std::path::PathBuf;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `zrocket serve` needs.
#[derive(Clone)]
pub struct Config {
    pub port: u16,
    pub mongodb_uri: String,
    /// `MONGODB_DATABASE`; `None` means "the URI's database, else `zrocket`".
    pub mongodb_database: Option<String>,
    pub auth_secret: String,
    pub public_zero_url: String,
    pub zero_api_key: Option<String>,
    pub web_dir: PathBuf,
    /// Lifetime of issued tokens, in seconds.
    pub token_ttl_secs: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("mongodb_uri", &"<redacted>")
            .field("mongodb_database", &self.mongodb_database)
            .field("auth_secret", &"<redacted>")
            .field("public_zero_url", &self.public_zero_url)
            .field(
                "zero_api_key",
                &self.zero_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("web_dir", &self.web_dir)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish()
    }
}

/// A configuration problem, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

pub const DEFAULT_PORT: u16 = 8011;
pub const DEFAULT_PUBLIC_ZERO_URL: &str = "http://localhost:4848";
pub const DEFAULT_WEB_DIR: &str = "app/web/dist";
pub const DEFAULT_DATABASE: &str = "zrocket";
/// An HMAC key shorter than this is too easy to guess.
pub const MIN_SECRET_LEN: usize = 16;

/// Reads one variable, treating an empty value as unset.
fn var(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

/// The MongoDB part only (what `zrocket seed` needs).
pub fn mongodb_from(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Option<String>), ConfigError> {
    let uri = var(lookup, "MONGODB_URI").ok_or(ConfigError::Missing("MONGODB_URI"))?;
    if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
        // Never echo the value: it may hold credentials.
        return Err(ConfigError::Invalid {
            name: "MONGODB_URI",
            problem: "must start with mongodb:// or mongodb+srv://".into(),
        });
    }
    Ok((uri, var(lookup, "MONGODB_DATABASE")))
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (mongodb_uri, mongodb_database) = mongodb_from(lookup)?;
        let auth_secret = var(lookup, "AUTH_SECRET").ok_or(ConfigError::Missing("AUTH_SECRET"))?;
        if auth_secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::Invalid {
                name: "AUTH_SECRET",
                problem: format!("must be at least {MIN_SECRET_LEN} bytes long"),
            });
        }
        let port = match var(lookup, "PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "PORT",
                problem: format!("{p:?} is not a port number"),
            })?,
        };
        let public_zero_url =
            var(lookup, "PUBLIC_ZERO_URL").unwrap_or_else(|| DEFAULT_PUBLIC_ZERO_URL.to_string());
        if !(public_zero_url.starts_with("http://") || public_zero_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "PUBLIC_ZERO_URL",
                problem: format!("{public_zero_url:?} must start with http:// or https://"),
            });
        }
        Ok(Config {
            port,
            mongodb_uri,
            mongodb_database,
            auth_secret,
            public_zero_url,
            zero_api_key: var(lookup, "ZERO_API_KEY"),
            web_dir: var(lookup, "WEB_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_WEB_DIR)),
            token_ttl_secs: 24 * 3600,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply() {
        let cfg = Config::from_lookup(&lookup(&[
            ("MONGODB_URI", "mongodb://127.0.0.1:1/x?replicaSet=rs0"),
            ("AUTH_SECRET", "0123456789abcdef0123"),
        ]))
        .unwrap();
        assert_eq!(cfg.port, 8011);
        assert_eq!(cfg.public_zero_url, "http://localhost:4848");
        assert_eq!(cfg.web_dir, PathBuf::from("app/web/dist"));
        assert!(cfg.zero_api_key.is_none());
    }

    #[test]
    fn missing_and_bad_values_are_named() {
        let err = Config::from_lookup(&lookup(&[("AUTH_SECRET", "0123456789abcdef")])).unwrap_err();
        assert!(err.to_string().contains("MONGODB_URI"), "{err}");
        let err = Config::from_lookup(&lookup(&[("MONGODB_URI", "mongodb://h/x")])).unwrap_err();
        assert!(err.to_string().contains("AUTH_SECRET"), "{err}");
        let err = Config::from_lookup(&lookup(&[
            ("MONGODB_URI", "mongodb://h/x"),
            ("AUTH_SECRET", "short"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("AUTH_SECRET"), "{err}");
        let err = Config::from_lookup(&lookup(&[
            ("MONGODB_URI", "postgres://user:pw@h/x"),
            ("AUTH_SECRET", "0123456789abcdef"),
        ]))
        .unwrap_err();
        assert!(
            !err.to_string().contains("pw"),
            "must not echo the URI: {err}"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let cfg = Config::from_lookup(&lookup(&[
            ("MONGODB_URI", "mongodb://user:hunter2@h/x"),
            ("AUTH_SECRET", "supersecretsupersecret"),
            ("ZERO_API_KEY", "apikey-value"),
        ]))
        .unwrap();
        let s = format!("{cfg:?}");
        assert!(
            !s.contains("hunter2") && !s.contains("supersecret") && !s.contains("apikey-value")
        );
    }
}
