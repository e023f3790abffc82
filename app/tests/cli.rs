//! The `zrocket` binary's command line, as an operator meets it: every variable of
//! `zerostack_spec::env::app` is listed by `--help`, read from the environment, and a bad value
//! is reported naming its variable without echoing a secret. None of these reach MongoDB: the
//! settings are checked before anything connects.

use std::process::{Command, Output};

use zerostack_spec::env::app as env;

/// Every variable the app reads (`AUTH_SECRET` is retired: accepted, ignored, not listed).
const ALL: [&str; 17] = [
    env::PORT,
    env::MONGODB_URI,
    env::MONGODB_DATABASE,
    env::PUBLIC_ZERO_URL,
    env::ZERO_API_KEY,
    env::WEB_DIR,
    env::DEV_LOGIN,
    env::OIDC_ISSUER,
    env::OIDC_JWKS_URL,
    env::OIDC_AUDIENCE,
    env::COOKIE_SECURE,
    env::TRUST_PROXY,
    env::LOGIN_MAX_FAILURES_PER_USER,
    env::LOGIN_MAX_FAILURES_PER_ADDRESS,
    env::LOGIN_FAILURE_WINDOW_SECS,
    env::LOG_LEVEL,
    env::LOG_FORMAT,
];

/// Runs `zrocket args...` with only the given environment variables.
fn zrocket(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zrocket"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run zrocket")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_variable() {
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let out = zrocket(args, &[("AUTH_SECRET", "do-not-print-this-secret")]);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        for name in ALL {
            assert!(
                help.contains(name),
                "{args:?} does not list {name}:\n{help}"
            );
        }
        assert!(
            !help.contains("do-not-print-this-secret"),
            "help shows a secret:\n{help}"
        );
    }
    let out = zrocket(&["seed", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [env::MONGODB_URI, env::MONGODB_DATABASE] {
        assert!(
            help.contains(name),
            "seed --help does not list {name}:\n{help}"
        );
    }
}

/// Runs `zrocket args...` and checks it fails with exit code 1 and one line naming the problem,
/// without echoing the URI's password or the secret used below.
fn assert_fails(args: &[&str], vars: &[(&str, &str)], expected: &str) {
    let out = zrocket(args, vars);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?} {vars:?}: {err}");
    assert!(
        err.starts_with("zrocket: ") && err.contains(expected),
        "{args:?} {vars:?}: {err:?} should contain {expected:?}"
    );
    assert!(!err.contains("hunter2"), "echoes the URI: {err}");
    assert!(
        !err.contains("0123456789abcdef"),
        "echoes the secret: {err}"
    );
}

const URI: (&str, &str) = (env::MONGODB_URI, "mongodb://user:hunter2@127.0.0.1:9/x");
/// The retired AUTH_SECRET, still set by older deployments: accepted, never echoed.
const SECRET: (&str, &str) = (env::AUTH_SECRET, "0123456789abcdef-secret");

#[test]
fn required_settings_are_named_when_missing() {
    assert_fails(
        &[],
        &[SECRET],
        "environment variable MONGODB_URI is required",
    );
    assert_fails(
        &["seed"],
        &[(env::MONGODB_DATABASE, "x")],
        "environment variable MONGODB_URI is required",
    );
}

#[test]
fn invalid_settings_are_named_without_their_secret_values() {
    assert_fails(
        &["serve"],
        &[URI, SECRET, (env::DEV_LOGIN, "yes")],
        "environment variable DEV_LOGIN is invalid: \"yes\" must be true or false",
    );
    assert_fails(
        &["serve"],
        &[URI, (env::OIDC_ISSUER, "https://id.example")],
        "OIDC_ISSUER, OIDC_JWKS_URL and OIDC_AUDIENCE must be set together",
    );
    assert_fails(
        &["serve"],
        &[(env::MONGODB_URI, "postgres://user:hunter2@h/x"), SECRET],
        "environment variable MONGODB_URI is invalid: must start with mongodb:// or mongodb+srv://",
    );
    assert_fails(
        &["serve"],
        &[URI, SECRET, (env::PORT, "eighty")],
        "environment variable PORT is invalid: \"eighty\" is not a port number",
    );
    assert_fails(
        &["serve"],
        &[URI, SECRET, (env::PUBLIC_ZERO_URL, "zero:4848")],
        "environment variable PUBLIC_ZERO_URL is invalid",
    );
}

#[test]
fn log_settings_are_checked_for_every_command() {
    assert_fails(
        &["serve"],
        &[URI, SECRET, (env::LOG_FORMAT, "xml")],
        "LOG_FORMAT must be \"text\" or \"json\", got \"xml\"",
    );
    assert_fails(
        &["export", "--out", "unused"],
        &[(env::LOG_LEVEL, "info,=[")],
        "LOG_LEVEL \"info,=[\" is invalid",
    );
}
