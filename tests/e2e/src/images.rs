//! Which images the end-to-end test runs, from `ZEROSTACK_E2E_IMAGES` (set by
//! `tests/cluster/with-cluster.sh`):
//!
//! - `local`: everything built without Docker by `tests/cluster/build-images.sh` and imported
//!   into the node (no registry, so `imagePullPolicy: Never`), including zero-cache built from
//!   the npm package and the dev databases from our MongoDB and PostgreSQL;
//! - `kind`: our three images built from the Dockerfiles and loaded into kind; zero-cache and
//!   the dev databases are the official images the manifests name.

/// The images of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub operator: String,
    pub source: String,
    pub app: String,
    /// zero-cache; `None`: the ZeroStack's default (`rocicorp/zero:<version>`).
    pub cache: Option<String>,
    /// Replacements for the images `manifests/dev-databases.yaml` names.
    pub dev_databases: Vec<(String, String)>,
    /// The pull policy for every image above that is replaced.
    pub pull_policy: &'static str,
}

/// The environment variable naming the image set.
pub const VAR: &str = "ZEROSTACK_E2E_IMAGES";

impl Images {
    /// The images named by `ZEROSTACK_E2E_IMAGES`, or why there are none.
    pub fn from_env() -> Result<Images, String> {
        match std::env::var(VAR).as_deref() {
            Ok("local") => Ok(Images::local()),
            Ok("kind") => Ok(Images::kind()),
            Ok(other) => Err(format!("{VAR}={other:?} (expected local or kind)")),
            Err(_) => Err(format!(
                "{VAR} is not set: no images of ours are known to be in the cluster"
            )),
        }
    }

    fn ours(pull_policy: &'static str, cache: Option<String>) -> Images {
        Images {
            operator: "zerostack/operator:e2e".into(),
            source: "zerostack/source-server:e2e".into(),
            app: "zerostack/zrocket:e2e".into(),
            cache,
            dev_databases: Vec::new(),
            pull_policy,
        }
    }

    pub fn local() -> Images {
        let mut images = Images::ours("Never", Some("zerostack/zero-cache:1.9.0".into()));
        images.dev_databases = vec![
            ("mongo:8.0.4".into(), "zerostack/dev-mongo:6.0.5".into()),
            (
                "postgres:16.6-alpine".into(),
                "zerostack/dev-postgres:15".into(),
            ),
        ];
        images
    }

    pub fn kind() -> Images {
        Images::ours("IfNotPresent", None)
    }
}
