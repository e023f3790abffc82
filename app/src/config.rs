//! The settings of `zrocket`: its command line, read by clap from flags or the environment, and
//! the validated settings each command runs with.
//!
//! Every variable is named in `zerostack_spec::env::app`, the names the operator's Deployments
//! set, so `zrocket --help` and `zrocket serve --help` list exactly what an operator can set.
//! clap only collects the values; they are checked here afterwards, for two reasons: clap's own
//! invalid-value errors quote the value, and a secret or a MongoDB URI (which may carry
//! credentials) must never be echoed; and a variable that is set but blank counts as unset.
//! Secrets are [`Secret`]s, whose `Debug` output is redacted, so the raw arguments and the
//! validated settings are both safe to log.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zerostack_spec::env::app as env;
pub use zerostack_spec::secret::Secret;

pub const DEFAULT_PORT: u16 = 8011;
pub const DEFAULT_PUBLIC_ZERO_URL: &str = "http://localhost:4848";
pub const DEFAULT_WEB_DIR: &str = "app/web/dist";
pub const DEFAULT_DATABASE: &str = "zrocket";
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Lifetime of a session (browser cookie or API token): a week, then sign in again.
pub const SESSION_TTL_SECS: u64 = 7 * 24 * 3600;
pub const DEFAULT_MAX_FAILURES_PER_USER: u32 = 5;
pub const DEFAULT_MAX_FAILURES_PER_ADDRESS: u32 = 20;
pub const DEFAULT_FAILURE_WINDOW_SECS: u64 = 300;

/// `zrocket [serve|export|seed]`; `serve` when no command is given.
#[derive(Debug, Parser)]
#[command(
    name = "zrocket",
    version,
    about = "ZRocket: a chat app on Zero and MongoDB",
    long_about = "ZRocket: a chat app on Zero and MongoDB. Without a command it serves, with the \
settings below. Every setting can be given as a flag or as the environment variable shown.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve`'s settings, used when no command is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl Cli {
    /// The command to run: `serve` with the top-level settings when none was given.
    pub fn into_command(self) -> Command {
        self.command
            .unwrap_or_else(|| Command::Serve(Box::new(self.serve)))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, the Zero endpoints and the UI (the default).
    Serve(Box<ServeArgs>),
    /// Write schema.json, table-mappings.json and permissions.json into a directory.
    Export {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Insert the demo data (idempotent, never destructive).
    Seed(MongoArgs),
}

/// Where the app's data lives (`serve` and `seed`).
#[derive(Clone, Debug, Default, Args)]
pub struct MongoArgs {
    /// MongoDB connection string; must reach a replica set (mutations run in transactions).
    /// Required.
    #[arg(long, env = env::MONGODB_URI, hide_env_values = true)]
    pub mongodb_uri: Option<Secret>,
    /// Database of the app's collections (default: the URI's database, else zrocket).
    #[arg(long, env = env::MONGODB_DATABASE)]
    pub mongodb_database: Option<String>,
}

/// What `zrocket serve` is given.
#[derive(Clone, Debug, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub mongodb: MongoArgs,
    /// Port to listen on (default 8011).
    #[arg(long, env = env::PORT)]
    pub port: Option<String>,
    /// Ignored: sessions are opaque tokens in MongoDB now. Accepted (with a warning) so that
    /// deployments that still set it keep starting.
    #[arg(long, env = env::AUTH_SECRET, hide_env_values = true, hide = true)]
    pub auth_secret: Option<Secret>,
    /// true: the password-less dev login is on (local use only; default false).
    #[arg(long, env = env::DEV_LOGIN)]
    pub dev_login: Option<String>,
    /// OIDC issuer whose ID tokens are accepted; with OIDC_JWKS_URL and OIDC_AUDIENCE.
    #[arg(long, env = env::OIDC_ISSUER)]
    pub oidc_issuer: Option<String>,
    /// The OIDC issuer's JWKS URL (its signing keys).
    #[arg(long, env = env::OIDC_JWKS_URL)]
    pub oidc_jwks_url: Option<String>,
    /// The audience (client id) the OIDC tokens must name.
    #[arg(long, env = env::OIDC_AUDIENCE)]
    pub oidc_audience: Option<String>,
    /// true: the session cookie is always Secure (served over HTTPS; default false).
    #[arg(long, env = env::COOKIE_SECURE)]
    pub cookie_secure: Option<String>,
    /// The session cookie's Domain, when the app and zero-cache are on two host names under it.
    #[arg(long, env = env::COOKIE_DOMAIN)]
    pub cookie_domain: Option<String>,
    /// true: a reverse proxy is in front; trust X-Forwarded-For / X-Forwarded-Proto.
    #[arg(long, env = env::TRUST_PROXY)]
    pub trust_proxy: Option<String>,
    /// Failed sign-ins per username per window before refusing (default 5).
    #[arg(long, env = env::LOGIN_MAX_FAILURES_PER_USER)]
    pub login_max_failures_per_user: Option<String>,
    /// Failed sign-ins per client address per window before refusing (default 20).
    #[arg(long, env = env::LOGIN_MAX_FAILURES_PER_ADDRESS)]
    pub login_max_failures_per_address: Option<String>,
    /// The window of the sign-in limits, in seconds (default 300).
    #[arg(long, env = env::LOGIN_FAILURE_WINDOW_SECS)]
    pub login_failure_window_secs: Option<String>,
    /// The zero-cache URL browsers use (default http://localhost:4848).
    #[arg(long, env = env::PUBLIC_ZERO_URL)]
    pub public_zero_url: Option<String>,
    /// When set, the mutate and query endpoints require it as X-Api-Key.
    #[arg(long, env = env::ZERO_API_KEY, hide_env_values = true)]
    pub zero_api_key: Option<Secret>,
    /// Folder of the built web UI (default app/web/dist).
    #[arg(long, env = env::WEB_DIR)]
    pub web_dir: Option<String>,
}

/// How every command logs.
#[derive(Clone, Debug, Default, Args)]
pub struct LogArgs {
    /// Log level or tracing filter, e.g. debug or zrocket=debug,info (default info).
    #[arg(long, env = env::LOG_LEVEL, global = true)]
    pub log_level: Option<String>,
    /// Log format: text or json (default text).
    #[arg(long, env = env::LOG_FORMAT, global = true)]
    pub log_format: Option<String>,
}

/// A configuration problem, naming the variable at fault and never quoting a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
    #[error("LOG_LEVEL {level:?} is invalid: {problem}")]
    LogLevel { level: String, problem: String },
    #[error("LOG_FORMAT must be \"text\" or \"json\", got {0:?}")]
    LogFormat(String),
}

/// The validated MongoDB settings.
#[derive(Clone, Debug)]
pub struct MongoSettings {
    pub uri: Secret,
    /// `None` means "the URI's database, else `zrocket`".
    pub database: Option<String>,
}

/// The external identity provider whose ID tokens `POST /api/auth/oidc` accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
}

/// The sign-in failure limits (sliding window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    pub max_failures_per_user: u32,
    pub max_failures_per_address: u32,
    pub window_secs: u64,
}

impl Default for LoginLimits {
    fn default() -> LoginLimits {
        LoginLimits {
            max_failures_per_user: DEFAULT_MAX_FAILURES_PER_USER,
            max_failures_per_address: DEFAULT_MAX_FAILURES_PER_ADDRESS,
            window_secs: DEFAULT_FAILURE_WINDOW_SECS,
        }
    }
}

/// Everything `zrocket serve` runs with, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub mongodb: MongoSettings,
    pub public_zero_url: String,
    pub zero_api_key: Option<Secret>,
    pub web_dir: PathBuf,
    /// Lifetime of a session, in seconds.
    pub session_ttl_secs: u64,
    pub dev_login: bool,
    pub oidc: Option<OidcSettings>,
    pub cookie_secure: bool,
    /// `Domain=` of the session cookie (a validated host name), or host-only.
    pub cookie_domain: Option<String>,
    pub trust_proxy: bool,
    pub login_limits: LoginLimits,
    /// Argon2id cost of new password hashes (tests lower it; verification reads the hash's).
    pub password_cost: crate::auth::password::Cost,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated log settings.
#[derive(Debug)]
pub struct LogSettings {
    pub filter: EnvFilter,
    pub format: LogFormat,
}

/// A value that is set and not blank (blank counts as unset).
fn given(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

fn given_secret(value: &Option<Secret>) -> Option<Secret> {
    given(value.as_ref().map(Secret::expose)).map(Secret::from)
}

fn given_string(value: &Option<String>) -> Option<String> {
    given(value.as_deref()).map(str::to_string)
}

impl MongoArgs {
    pub fn validate(&self) -> Result<MongoSettings, ConfigError> {
        let uri = given_secret(&self.mongodb_uri).ok_or(ConfigError::Missing(env::MONGODB_URI))?;
        let scheme_ok =
            uri.expose().starts_with("mongodb://") || uri.expose().starts_with("mongodb+srv://");
        if !scheme_ok {
            // Never echo the value: it may hold credentials.
            return Err(ConfigError::Invalid {
                name: env::MONGODB_URI,
                problem: "must start with mongodb:// or mongodb+srv://".into(),
            });
        }
        Ok(MongoSettings {
            uri,
            database: given_string(&self.mongodb_database),
        })
    }
}

impl ServeArgs {
    /// Checks the settings in the order an operator would fix them: MongoDB, the secret, then
    /// the optional ones.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mongodb = self.mongodb.validate()?;
        let port = match given(self.port.as_deref()) {
            None => DEFAULT_PORT,
            Some(p) => p.trim().parse().map_err(|_| ConfigError::Invalid {
                name: env::PORT,
                problem: format!("{p:?} is not a port number"),
            })?,
        };
        let public_zero_url = given_string(&self.public_zero_url)
            .unwrap_or_else(|| DEFAULT_PUBLIC_ZERO_URL.to_string());
        if !(public_zero_url.starts_with("http://") || public_zero_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: env::PUBLIC_ZERO_URL,
                problem: format!("{public_zero_url:?} must start with http:// or https://"),
            });
        }
        let oidc = match (
            given_string(&self.oidc_issuer),
            given_string(&self.oidc_jwks_url),
            given_string(&self.oidc_audience),
        ) {
            (None, None, None) => None,
            (Some(issuer), Some(jwks_url), Some(audience)) => {
                if !(jwks_url.starts_with("https://") || jwks_url.starts_with("http://")) {
                    return Err(ConfigError::Invalid {
                        name: env::OIDC_JWKS_URL,
                        problem: "must start with https:// or http://".into(),
                    });
                }
                Some(OidcSettings {
                    issuer,
                    jwks_url,
                    audience,
                })
            }
            (issuer, jwks, _) => {
                let missing = if issuer.is_none() {
                    env::OIDC_ISSUER
                } else if jwks.is_none() {
                    env::OIDC_JWKS_URL
                } else {
                    env::OIDC_AUDIENCE
                };
                return Err(ConfigError::Invalid {
                    name: missing,
                    problem: "OIDC_ISSUER, OIDC_JWKS_URL and OIDC_AUDIENCE must be set together"
                        .into(),
                });
            }
        };
        let defaults = LoginLimits::default();
        let login_limits = LoginLimits {
            max_failures_per_user: positive(
                env::LOGIN_MAX_FAILURES_PER_USER,
                &self.login_max_failures_per_user,
                defaults.max_failures_per_user,
            )?,
            max_failures_per_address: positive(
                env::LOGIN_MAX_FAILURES_PER_ADDRESS,
                &self.login_max_failures_per_address,
                defaults.max_failures_per_address,
            )?,
            window_secs: positive(
                env::LOGIN_FAILURE_WINDOW_SECS,
                &self.login_failure_window_secs,
                defaults.window_secs,
            )?,
        };
        Ok(Config {
            port,
            mongodb,
            public_zero_url,
            zero_api_key: given_secret(&self.zero_api_key),
            web_dir: PathBuf::from(
                given_string(&self.web_dir).unwrap_or_else(|| DEFAULT_WEB_DIR.to_string()),
            ),
            session_ttl_secs: SESSION_TTL_SECS,
            dev_login: flag(env::DEV_LOGIN, &self.dev_login)?,
            oidc,
            cookie_secure: flag(env::COOKIE_SECURE, &self.cookie_secure)?,
            cookie_domain: given_string(&self.cookie_domain)
                .map(|d| cookie_domain(&d))
                .transpose()?,
            trust_proxy: flag(env::TRUST_PROXY, &self.trust_proxy)?,
            login_limits,
            password_cost: crate::auth::password::Cost::default(),
        })
    }

    /// Whether the retired `AUTH_SECRET` is still set (the binary warns about it).
    pub fn sets_retired_auth_secret(&self) -> bool {
        given_secret(&self.auth_secret).is_some()
    }
}

/// `true` / `false` (unset or blank: false); anything else is refused rather than guessed.
fn flag(name: &'static str, value: &Option<String>) -> Result<bool, ConfigError> {
    match given(value.as_deref()).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            name,
            problem: format!("{:?} must be true or false", clip(&v, 40)),
        }),
    }
}

/// A cookie `Domain`: a host name (letters, digits, `-`, dots between labels), lowercased, with
/// an optional leading dot dropped as browsers do. Anything else would be a broken or injected
/// `Set-Cookie` attribute, so it is refused at start-up.
fn cookie_domain(value: &str) -> Result<String, ConfigError> {
    let domain = value.trim().trim_start_matches('.').to_ascii_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() <= 253 && domain.split('.').all(valid_label) {
        Ok(domain)
    } else {
        Err(ConfigError::Invalid {
            name: env::COOKIE_DOMAIN,
            problem: format!("{:?} is not a host name like example.com", clip(value, 60)),
        })
    }
}

/// A positive integer setting with a default.
fn positive<T: std::str::FromStr + PartialOrd + Default>(
    name: &'static str,
    value: &Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match given(value.as_deref()) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<T>() {
            Ok(n) if n > T::default() => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                problem: format!("{:?} is not a positive integer", clip(v, 40)),
            }),
        },
    }
}

/// At most `max` characters of `s` (cut on a character boundary), for echoing input.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

impl LogArgs {
    /// Unset means `info` and `text`; an empty `LOG_FORMAT` is `text` too.
    pub fn validate(&self) -> Result<LogSettings, ConfigError> {
        let level = self.log_level.as_deref().unwrap_or(DEFAULT_LOG_LEVEL);
        let filter = EnvFilter::try_new(level).map_err(|e| ConfigError::LogLevel {
            level: level.to_string(),
            problem: e.to_string(),
        })?;
        let format = match self.log_format.as_deref().unwrap_or("text") {
            "json" => LogFormat::Json,
            "text" | "" => LogFormat::Text,
            other => return Err(ConfigError::LogFormat(other.to_string())),
        };
        Ok(LogSettings { filter, format })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cookie_domains_are_host_names_or_refused() {
        assert_eq!(
            super::cookie_domain(" .Example.COM ").unwrap(),
            "example.com"
        );
        assert_eq!(
            super::cookie_domain("chat-1.example.com").unwrap(),
            "chat-1.example.com"
        );
        for bad in [
            "",
            "example.com; Secure",
            "exa mple.com",
            "a..b",
            "ex\u{e9}.com",
            "x/y",
        ] {
            let err = super::cookie_domain(bad).unwrap_err().to_string();
            assert!(err.contains("COOKIE_DOMAIN"), "{bad:?}: {err}");
        }
    }

    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    fn serve_args(uri: Option<&str>, secret: Option<&str>) -> ServeArgs {
        ServeArgs {
            mongodb: MongoArgs {
                mongodb_uri: uri.map(Secret::from),
                mongodb_database: None,
            },
            auth_secret: secret.map(Secret::from),
            ..Default::default()
        }
    }

    #[test]
    fn sign_in_settings_default_off_and_are_checked() {
        let mut args = serve_args(Some("mongodb://h/x"), None);
        let cfg = args.validate().unwrap();
        assert!(!cfg.dev_login && !cfg.cookie_secure && !cfg.trust_proxy);
        assert!(cfg.oidc.is_none());
        assert_eq!(cfg.login_limits, LoginLimits::default());
        assert_eq!(
            (
                cfg.login_limits.max_failures_per_user,
                cfg.login_limits.max_failures_per_address
            ),
            (5, 20)
        );
        args.dev_login = Some("TRUE".into());
        args.cookie_secure = Some("true".into());
        args.login_failure_window_secs = Some("60".into());
        let cfg = args.validate().unwrap();
        assert!(cfg.dev_login && cfg.cookie_secure);
        assert_eq!(cfg.login_limits.window_secs, 60);
        args.dev_login = Some("yes".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("DEV_LOGIN"), "{err}");
        args.dev_login = None;
        args.login_max_failures_per_user = Some("0".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("LOGIN_MAX_FAILURES_PER_USER"), "{err}");
        args.login_max_failures_per_user = None;
        args.oidc_issuer = Some("https://id.example".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("OIDC_JWKS_URL"), "{err}");
        args.oidc_jwks_url = Some("https://id.example/jwks".into());
        args.oidc_audience = Some("zrocket".into());
        let oidc = args.validate().unwrap().oidc.unwrap();
        assert_eq!(oidc.audience, "zrocket");
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(clip(&"😀".repeat(1001), 1000).chars().count(), 1001);
    }

    #[test]
    fn defaults_apply() {
        let cfg = serve_args(
            Some("mongodb://127.0.0.1:1/x?replicaSet=rs0"),
            Some("0123456789abcdef0123"),
        )
        .validate()
        .unwrap();
        assert_eq!(cfg.port, 8011);
        assert_eq!(cfg.public_zero_url, "http://localhost:4848");
        assert_eq!(cfg.web_dir, PathBuf::from("app/web/dist"));
        assert!(cfg.zero_api_key.is_none());
        assert!(cfg.mongodb.database.is_none());
        assert_eq!(cfg.session_ttl_secs, 7 * 24 * 3600);
    }

    #[test]
    fn missing_and_bad_values_are_named() {
        let err = serve_args(None, Some("0123456789abcdef"))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("MONGODB_URI"), "{err}");
        // AUTH_SECRET is retired: absent or short, it no longer matters.
        assert!(serve_args(Some("mongodb://h/x"), None).validate().is_ok());
        let args = serve_args(Some("mongodb://h/x"), Some("short"));
        assert!(args.validate().is_ok() && args.sets_retired_auth_secret());
        let err = serve_args(Some("postgres://user:pw@h/x"), Some("0123456789abcdef"))
            .validate()
            .unwrap_err();
        assert!(
            !err.to_string().contains("pw"),
            "must not echo the URI: {err}"
        );
        let mut args = serve_args(Some("mongodb://h/x"), Some("0123456789abcdef"));
        args.port = Some("eighty".into());
        let err = args.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "environment variable PORT is invalid: \"eighty\" is not a port number"
        );
        args.port = Some(" 9000 ".into());
        args.public_zero_url = Some("ws://z".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("PUBLIC_ZERO_URL"), "{err}");
    }

    #[test]
    fn blank_values_count_as_unset() {
        let mut args = serve_args(Some("mongodb://h/x"), Some("0123456789abcdef"));
        args.port = Some("".into());
        args.web_dir = Some("  ".into());
        args.zero_api_key = Some(Secret::from(""));
        args.mongodb.mongodb_database = Some("".into());
        let cfg = args.validate().unwrap();
        assert_eq!(cfg.port, DEFAULT_PORT);
        assert_eq!(cfg.web_dir, PathBuf::from(DEFAULT_WEB_DIR));
        assert!(cfg.zero_api_key.is_none());
        assert!(cfg.mongodb.database.is_none());
        let err = serve_args(Some(" "), Some("0123456789abcdef"))
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable MONGODB_URI is required"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut args = serve_args(
            Some("mongodb://user:hunter2@h/x"),
            Some("supersecretsupersecret"),
        );
        args.zero_api_key = Some("apikey-value".into());
        let cfg = args.validate().unwrap();
        for s in [format!("{cfg:?}"), format!("{args:?}")] {
            assert!(
                !s.contains("hunter2") && !s.contains("supersecret") && !s.contains("apikey-value"),
                "{s}"
            );
        }
    }

    #[test]
    fn log_settings_default_and_name_their_variable() {
        let log = LogArgs::default().validate().unwrap();
        assert_eq!(log.format, LogFormat::Text);
        assert_eq!(log.filter.to_string(), "info");
        let empty_format = LogArgs {
            log_format: Some("".into()),
            ..Default::default()
        };
        assert_eq!(empty_format.validate().unwrap().format, LogFormat::Text);
        let json = LogArgs {
            log_format: Some("json".into()),
            ..Default::default()
        };
        assert_eq!(json.validate().unwrap().format, LogFormat::Json);
        let bad = LogArgs {
            log_format: Some("xml".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "LOG_FORMAT must be \"text\" or \"json\", got \"xml\""
        );
        let bad = LogArgs {
            log_level: Some("info,=[".into()),
            ..Default::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("LOG_LEVEL \"info,=[\" is invalid: "),
            "{err}"
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_means_serve_and_flags_work_everywhere() {
        let cli = Cli::try_parse_from(["zrocket", "--port", "9001"]).unwrap();
        match cli.into_command() {
            Command::Serve(args) => assert_eq!(args.port.as_deref(), Some("9001")),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["zrocket", "serve", "--web-dir", "w"]).unwrap();
        match cli.into_command() {
            Command::Serve(args) => assert_eq!(args.web_dir.as_deref(), Some("w")),
            other => panic!("{other:?}"),
        }
        // Flags before a command are `serve`'s, so a global flag goes after the command.
        let cli = Cli::try_parse_from(["zrocket", "export", "--log-format", "json", "--out", "d"])
            .unwrap();
        assert_eq!(cli.log.log_format.as_deref(), Some("json"));
        assert!(matches!(cli.into_command(), Command::Export { out } if out == Path::new("d")));
        let cli = Cli::try_parse_from(["zrocket", "seed", "--mongodb-database", "db"]).unwrap();
        match cli.into_command() {
            Command::Seed(args) => assert_eq!(args.mongodb_database.as_deref(), Some("db")),
            other => panic!("{other:?}"),
        }
    }
}
