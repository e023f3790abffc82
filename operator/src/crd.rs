//! The `ZeroStack` custom resource: the Rust types are the single source of truth for the CRD.
//!
//! `crdgen` serialises [`crd()`] into `crds/`, and a test fails when that file is stale.
//! Every field carries a doc comment because those comments become the descriptions that
//! `kubectl explain zerostack.spec...` prints; [`crd()`] turns their wrapped lines back into
//! paragraphs. CEL rules (`x-kubernetes-validations`) reject what
//! can be rejected at `kubectl apply` time, and the same rules are evaluated client-side in tests
//! via `kube`'s `cel` feature.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "zerostack.dev";
/// The zero-cache version used when `spec.cache.version` is not set.
pub const DEFAULT_ZERO_VERSION: &str = "1.9.0";

// Several printer columns share a `type_`; clippy mistakes them for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
/// Desired state of one ZeroStack: a MongoDB change source, Rocicorp's zero-cache and
/// (optionally) the ZRocket app, wired together.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "zerostack.dev",
    version = "v1alpha1",
    kind = "ZeroStack",
    plural = "zerostacks",
    shortname = "zs",
    category = "zerostack",
    namespaced,
    cel,
    status = "ZeroStackStatus",
    derive = "PartialEq",
    doc = "A ZeroStack runs a Zero sync stack on MongoDB: the change source (source-server), zero-cache and the app.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every component is ready"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Summary of the stack's state"
    ),
    printcolumn(
        name = "Schema",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"SchemaValid\")].status",
        description = "Whether the schema passed validation"
    ),
    printcolumn(
        name = "Source",
        type_ = "integer",
        json_path = ".status.source.readyReplicas",
        description = "Ready change-source pods"
    ),
    printcolumn(
        name = "Cache",
        type_ = "integer",
        json_path = ".status.cache.readyReplicas",
        description = "Ready zero-cache pods"
    ),
    printcolumn(
        name = "App",
        type_ = "integer",
        json_path = ".status.app.readyReplicas",
        description = "Ready app pods"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1,
        description = "Why the stack is (not) ready"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ZeroStackSpec {
    /// Zero app id (`ZERO_APP_ID`). Names the replicated tables `<appId>_<shard>.*` and
    /// `<appId>.permissions`. Lowercase letters, digits and underscores. Immutable: changing it
    /// would orphan every client's state.
    #[serde(default = "default_app_id")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("appId is immutable"))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9_]+$')").message("appId must match ^[a-z0-9_]+$"))]
    #[x_kube(validation = Rule::new("size(self) <= 63").message("appId must be at most 63 characters"))]
    pub app_id: String,

    /// Zero shard number (`ZERO_SHARD_NUM`). Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("shard is immutable"))]
    #[x_kube(validation = Rule::new("self >= 0").message("shard must not be negative"))]
    pub shard: i32,

    /// Stop reconciling: the operator leaves every child object as it is and reports the
    /// `ReconciliationPaused` condition. Set back to false to resume.
    #[serde(default)]
    pub paused: bool,

    /// The MongoDB replica set the change source reads and the app writes.
    pub mongodb: MongoSpec,

    /// The PostgreSQL databases zero-cache keeps its client view records (CVR) and change log in.
    pub postgres: PostgresSpec,

    /// The Zero schema, table mappings and permissions, inline or from a ConfigMap.
    pub schema: SchemaSource,

    /// The MongoDB change source (source-server).
    #[serde(default)]
    pub source: SourceSpec,

    /// Rocicorp's zero-cache.
    #[serde(default)]
    pub cache: CacheSpec,

    /// The ZRocket app (mutate/query endpoints and web UI).
    #[serde(default)]
    pub app: AppSpec,

    /// NetworkPolicies that let only zero-cache reach the change source (on by default).
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
}

fn default_app_id() -> String {
    "zero".to_string()
}

/// A key in a Secret in the ZeroStack's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[x_kube(validation = Rule::new("self != ''").message("secret name must not be empty"))]
    pub name: String,
    /// Key inside the Secret.
    #[x_kube(validation = Rule::new("self != ''").message("secret key must not be empty"))]
    pub key: String,
}

/// Where MongoDB is.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MongoSpec {
    /// Secret key holding the MongoDB connection string (`mongodb://...`, a replica set).
    /// Connection strings are never accepted inline.
    pub uri_secret_ref: SecretKeyRef,
    /// Database name (`MONGODB_DATABASE`); by default the connection string's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// Where zero-cache's PostgreSQL databases are.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSpec {
    /// Secret key holding the connection string of the CVR database (`ZERO_CVR_DB`).
    pub cvr_secret_ref: SecretKeyRef,
    /// Secret key holding the connection string of the change database (`ZERO_CHANGE_DB`).
    /// Defaults to the CVR database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_secret_ref: Option<SecretKeyRef>,
}

/// The schema files, given exactly one way.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.inline) != has(self.configMapRef)").message("set exactly one of schema.inline and schema.configMapRef"))]
pub struct SchemaSource {
    /// The files as JSON text in the resource itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineSchema>,
    /// The files from a ConfigMap in the ZeroStack's namespace (e.g. made from `zrocket export`).
    /// The operator watches it: an edit is validated and then rolls the change source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<SchemaConfigMapRef>,
}

/// Schema files as JSON text.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InlineSchema {
    /// The Zero schema: what `JSON.stringify(schema)` gives for a Zero 1.x schema.
    #[x_kube(validation = Rule::new("self != ''").message("schema.inline.schema must not be empty"))]
    pub schema: String,
    /// Table mappings JSON (`{<zeroTable>: {source, filter?, projection?}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_mappings: Option<String>,
    /// Permissions JSON, published as `<appId>.permissions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

/// A ConfigMap holding the schema files.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaConfigMapRef {
    /// Name of the ConfigMap.
    pub name: String,
    /// Key of the schema JSON.
    #[serde(default = "default_schema_key")]
    pub schema_key: String,
    /// Key of the table mappings JSON; the key may be absent from the ConfigMap.
    #[serde(default = "default_mappings_key")]
    pub table_mappings_key: String,
    /// Key of the permissions JSON; the key may be absent from the ConfigMap.
    #[serde(default = "default_permissions_key")]
    pub permissions_key: String,
}

fn default_schema_key() -> String {
    "schema.json".into()
}
fn default_mappings_key() -> String {
    "table-mappings.json".into()
}
fn default_permissions_key() -> String {
    "permissions.json".into()
}

/// Pod-level settings shared by every component.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Container image; each component has a pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy (Always, IfNotPresent, Never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['Always', 'IfNotPresent', 'Never']").message("imagePullPolicy must be Always, IfNotPresent or Never"))]
    pub image_pull_policy: Option<String>,
    /// CPU and memory requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables, appended after the ones the operator sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Node selector for the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations for the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity rules for the pods (a core/v1 Affinity; validated when the pods are created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub affinity: Option<Affinity>,
    /// Extra annotations on the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,
}

/// The MongoDB change source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Number of source-server pods.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    pub replicas: i32,
    /// Secret key with the token zero-cache presents to the source. Generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// Log level (`LOG_LEVEL`).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Image, resources, env and scheduling.
    #[serde(flatten)]
    pub workload: WorkloadSpec,
}

impl Default for SourceSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            token_secret_ref: None,
            log_level: default_log_level(),
            workload: WorkloadSpec::default(),
        }
    }
}

/// zero-cache. By default one single node (a replication manager that also serves clients);
/// with `viewSyncers` a replication-manager plus that many view-syncers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.autoscale) || (has(self.viewSyncers) && self.viewSyncers >= 1)").message("cache.autoscale needs cache.viewSyncers >= 1 (it scales the view-syncers)"))]
#[x_kube(validation = Rule::new("!has(self.viewSyncers) || self.viewSyncers == 0 || has(self.backup)").message("cache.viewSyncers >= 1 needs cache.backup: view-syncers start from the replication-manager's Litestream backup"))]
pub struct CacheSpec {
    /// zero-cache version; the image defaults to `rocicorp/zero:<version>`.
    #[serde(default = "default_zero_version")]
    pub version: String,
    /// Number of zero-cache pods: 0 (stopped) or 1. With `viewSyncers`, the replication-manager's
    /// pods (0 also stops the view-syncers). There is never more than one replication-manager.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self == 0 || self == 1").message("cache.replicas must be 0 or 1 (zero-cache runs single-node with a custom change source)"))]
    pub replicas: i32,
    /// Number of view-syncers. 0 or absent: one single-node zero-cache (the default). N >= 1: a
    /// replication-manager (`ZERO_NUM_SYNC_WORKERS=0`, the only pod that reads the change source,
    /// serving the change stream on port 4849 to the view-syncers only) and a Deployment of N
    /// view-syncers (`ZERO_CHANGE_STREAMER_URI`) behind the client Service, with session
    /// affinity. Needs `backup`: a view-syncer starts from the replication-manager's backup. The
    /// view-syncers roll only once the replication-manager is ready on the new spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("cache.viewSyncers must not be negative"))]
    pub view_syncers: Option<i32>,
    /// A HorizontalPodAutoscaler on the view-syncers (needs `viewSyncers`). The operator then
    /// leaves the view-syncer Deployment's `replicas` to the autoscaler; `viewSyncers` only
    /// chooses the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleSpec>,
    /// Litestream backups of the replica (zero-cache's `ZERO_LITESTREAM_*` settings). Required
    /// with `viewSyncers`; optional for the single node (which then restores from it on start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// The resync lever: change this number to make zero-cache start from a fresh replica (a
    /// full initial sync from the change source). It names the replica file
    /// (`replica-g<N>.db`) and the backup folder (`<backup.url>/g<N>`), so neither the old file
    /// nor the old backup is read again. 0 or absent: the original names (`replica.db`, the
    /// backup URL as given). Old files are not deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("cache.generation must not be negative"))]
    pub generation: Option<i64>,
    /// Where the SQLite replica lives.
    #[serde(default)]
    pub storage: CacheStorage,
    /// Secret key with the admin password (`ZERO_ADMIN_PASSWORD`). Generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_secret_ref: Option<SecretKeyRef>,
    /// Deprecated and ignored. It let zero-cache verify the app's JWTs itself (`ZERO_AUTH_SECRET`);
    /// the app now signs no JWTs (its sessions are opaque tokens kept in MongoDB), so zero-cache
    /// forwards the session cookie or token and the app checks it.
    #[serde(default)]
    pub verify_tokens: bool,
    /// Number of sync workers (`ZERO_NUM_SYNC_WORKERS`); zero-cache's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("numSyncWorkers must be at least 1"))]
    pub num_sync_workers: Option<i32>,
    /// Log level (`ZERO_LOG_LEVEL`).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Image, resources, env and scheduling.
    #[serde(flatten)]
    pub workload: WorkloadSpec,
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self {
            version: default_zero_version(),
            replicas: 1,
            view_syncers: None,
            autoscale: None,
            backup: None,
            generation: None,
            storage: CacheStorage::default(),
            admin_password_secret_ref: None,
            verify_tokens: false,
            num_sync_workers: None,
            log_level: default_log_level(),
            workload: WorkloadSpec::default(),
        }
    }
}

/// The view-syncers' HorizontalPodAutoscaler (autoscaling/v2, CPU utilisation).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscale.minReplicas must not exceed autoscale.maxReplicas"))]
pub struct AutoscaleSpec {
    /// Fewest view-syncers.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message("autoscale.minReplicas must be at least 1"))]
    pub min_replicas: i32,
    /// Most view-syncers.
    #[x_kube(validation = Rule::new("self >= 1").message("autoscale.maxReplicas must be at least 1"))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of the CPU request) the autoscaler aims at.
    #[serde(default = "default_target_cpu", rename = "targetCPU")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("autoscale.targetCPU must be between 1 and 100"))]
    pub target_cpu: i32,
}

fn default_target_cpu() -> i32 {
    70
}

/// Where the replication-manager backs the replica up with Litestream and view-syncers restore
/// it from. Credentials come only from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.volumeClaimName) || self.url.startsWith('file:///backup')").message("backup.volumeClaimName is mounted at /backup: backup.url must be file:///backup/..."))]
pub struct BackupSpec {
    /// The backup location (`ZERO_LITESTREAM_BACKUP_URL`), e.g. `s3://bucket/path`. Any URL
    /// Litestream accepts (`s3://`, `gs://`, `abs://`, `file://` on a volume every pod shares).
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9+.-]*://.+$')").message("backup.url must be a URL like s3://bucket/path"))]
    pub url: String,
    /// S3-compatible endpoint for non-AWS services (`ZERO_LITESTREAM_ENDPOINT`), e.g.
    /// `http://minio.storage.svc:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket's region (`ZERO_LITESTREAM_REGION`), where Litestream cannot detect it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A Secret with the S3 credentials, passed to Litestream as `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` by `secretKeyRef`. Absent: the pods' own identity (e.g. IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<BackupCredentialsRef>,
    /// For a cluster without object storage: a PersistentVolumeClaim of yours, mounted at
    /// `/backup` in the replication-manager and every view-syncer, with `url:
    /// file:///backup/<folder>`. It must be ReadWriteMany (NFS, CephFS), or every zero-cache pod
    /// must run on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_name: Option<String>,
}

/// Keys of a Secret holding S3 credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupCredentialsRef {
    /// Name of the Secret.
    #[x_kube(validation = Rule::new("self != ''").message("secret name must not be empty"))]
    pub name: String,
    /// Key of the access key id.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key of the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

impl CacheSpec {
    /// The number of view-syncers when the stack runs the replication-manager + view-syncers
    /// topology; `None` for the single node.
    pub fn view_syncer_count(&self) -> Option<i32> {
        self.view_syncers.filter(|n| *n >= 1)
    }

    /// The resync generation, when one other than the original (0) is chosen.
    pub fn resync_generation(&self) -> Option<i64> {
        self.generation.filter(|g| *g > 0)
    }
}

/// Storage for zero-cache's replica file. The replica can always be rebuilt from the source,
/// so `EmptyDir` is valid; a volume avoids a full resync on every restart.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'PersistentVolumeClaim' || !has(self.storageClassName)").message("storageClassName only applies to type PersistentVolumeClaim"))]
pub struct CacheStorage {
    /// `PersistentVolumeClaim` (default) or `EmptyDir`.
    #[serde(rename = "type", default = "default_storage_type")]
    #[x_kube(validation = Rule::new("self in ['PersistentVolumeClaim', 'EmptyDir']").message("storage.type must be PersistentVolumeClaim or EmptyDir"))]
    pub type_: String,
    /// Size of the volume (or the emptyDir size limit).
    #[serde(default = "default_storage_size")]
    pub size: String,
    /// StorageClass of the claim; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for CacheStorage {
    fn default() -> Self {
        Self {
            type_: default_storage_type(),
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

impl CacheStorage {
    /// Whether a PersistentVolumeClaim is wanted.
    pub fn is_pvc(&self) -> bool {
        self.type_ == "PersistentVolumeClaim"
    }
}

/// The ZRocket app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// Run the app. When false, zero-cache gets no mutate/query URLs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Number of app pods.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    pub replicas: i32,
    /// Deprecated and ignored: the app keeps its sessions in MongoDB and no longer signs tokens
    /// with a key (`AUTH_SECRET` is retired). Kept so that existing resources still apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretKeyRef>,
    /// The zero-cache URL browsers use (`PUBLIC_ZERO_URL`), e.g. your Ingress for zero-cache.
    #[serde(default = "default_public_zero_url")]
    pub public_zero_url: String,
    /// Turn on the password-less dev login (`DEV_LOGIN=true`): anyone who can reach the app can
    /// sign in as any user by name. For local trials only; never on a stack others can reach.
    #[serde(default)]
    pub dev_login: bool,
    /// Accept ID tokens from an external OpenID Connect provider (`OIDC_ISSUER`,
    /// `OIDC_JWKS_URL`, `OIDC_AUDIENCE`); a token's subject becomes a user on first sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
    /// The app is served over HTTPS (directly or behind a TLS-terminating Ingress): the session
    /// cookie gets `Secure` (`COOKIE_SECURE=true`).
    #[serde(default)]
    pub cookie_secure: bool,
    /// The session cookie's `Domain` (`COOKIE_DOMAIN`), when the app and zero-cache are served
    /// on two host names under one parent domain (e.g. `example.com` for `chat.example.com` and
    /// `zero.example.com`): the browser must send the cookie to zero-cache, which forwards it to
    /// the app. Unset: a host-only cookie, enough when both share one host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[.]?[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*$')").message("cookieDomain must be a host name like example.com"))]
    pub cookie_domain: Option<String>,
    /// A reverse proxy (an Ingress controller) is in front of the app (`TRUST_PROXY=true`):
    /// the sign-in limit per client address uses the first `X-Forwarded-For` hop instead of the
    /// proxy's own address, and `X-Forwarded-Proto: https` makes the cookie `Secure`. Without it,
    /// behind a proxy every client shares one address and one failed-sign-in budget. Set it only
    /// when the proxy overwrites `X-Forwarded-For`.
    #[serde(default)]
    pub trust_proxy: bool,
    /// Log level (`LOG_LEVEL`).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Image, resources, env and scheduling.
    #[serde(flatten)]
    pub workload: WorkloadSpec,
}

/// An OpenID Connect provider whose ID tokens the app accepts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OidcSpec {
    /// The issuer (`iss`) the tokens must name, e.g. `https://accounts.example.com`.
    #[x_kube(validation = Rule::new("self != ''").message("oidc.issuer must not be empty"))]
    pub issuer: String,
    /// The URL of the issuer's signing keys (JWKS).
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("oidc.jwksUrl must be an http(s) URL"))]
    pub jwks_url: String,
    /// The audience (`aud`) the tokens must name: the app's client id at the provider.
    #[x_kube(validation = Rule::new("self != ''").message("oidc.audience must not be empty"))]
    pub audience: String,
}

impl Default for AppSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            replicas: 1,
            auth_secret_ref: None,
            public_zero_url: default_public_zero_url(),
            dev_login: false,
            oidc: None,
            cookie_secure: false,
            cookie_domain: None,
            trust_proxy: false,
            log_level: default_log_level(),
            workload: WorkloadSpec::default(),
        }
    }
}

/// NetworkPolicy settings. On by default: the change source serves the schema and the change
/// stream, which only zero-cache needs. They take effect only where the cluster's network plugin
/// enforces NetworkPolicies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create NetworkPolicies that admit only zero-cache pods to the change source (port 8001)
    /// and only the client port (4848) of zero-cache. The app and your databases get none.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn one() -> i32 {
    1
}
fn yes() -> bool {
    true
}
fn default_log_level() -> String {
    "info".into()
}
fn default_zero_version() -> String {
    DEFAULT_ZERO_VERSION.into()
}
fn default_storage_type() -> String {
    "PersistentVolumeClaim".into()
}
fn default_storage_size() -> String {
    "10Gi".into()
}
fn default_public_zero_url() -> String {
    "http://localhost:4848".into()
}

/// Observed state, written only by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ZeroStackStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary: Pending, Progressing, Ready, Degraded, SchemaInvalid or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready, SourceReady, CacheReady, AppReady, SchemaValid, Progressing, Degraded and
    /// ReconciliationPaused, each with its own observedGeneration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Change-source pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ComponentStatus>,
    /// zero-cache pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ComponentStatus>,
    /// App pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<ComponentStatus>,
    /// zero-cache's replication-manager and view-syncers, when `cache.viewSyncers` is set
    /// (then `cache` counts the view-syncers, the pods that serve clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_topology: Option<CacheTopologyStatus>,
    /// In-cluster URLs of the components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// sha256 of the schema files currently rolled out to the change source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hash: Option<String>,
    /// The last schema change rolled out, and whether the change source can apply it to
    /// zero-cache's replica in place or zero-cache resyncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schema_change: Option<SchemaChangeStatus>,
}

/// One schema change, classified by the change source's own rules
/// (`zerostack_spec::schema_diff`) from the rolled-out schema files before and after.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaChangeStatus {
    /// `status.schemaHash` before the change.
    pub from_hash: String,
    /// `status.schemaHash` after it.
    pub to_hash: String,
    /// InPlace, Resync, or Unknown (the previous schema could no longer be read).
    pub kind: SchemaChangeKind,
    /// In place: what the source streams to zero-cache, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// Resync or Unknown: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the operator rolled the change out.
    pub at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// How zero-cache's replica follows a schema change.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaChangeKind {
    /// The source streams the change; zero-cache keeps its replica and its clients.
    InPlace,
    /// The source answers `reset-required`; zero-cache rebuilds its replica.
    Resync,
    /// The previous schema's ConfigMap was gone, so the change could not be classified.
    Unknown,
}

/// Replica counts of one component's Deployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Desired pods.
    pub replicas: i32,
    /// Pods passing their readiness probe.
    pub ready_replicas: i32,
    /// Pods running the current pod template.
    pub updated_replicas: i32,
}

/// The replication-manager + view-syncers topology. The age of the last backup is not here:
/// zero-cache 1.9.0 keeps it to itself (Litestream's metrics listen on the pod's loopback only,
/// and zero-cache's own backup metrics are OpenTelemetry metrics for a collector of yours, set
/// up with the `OTEL_*` variables, not something the operator reads).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CacheTopologyStatus {
    /// The replication-manager runs the current spec and is ready.
    pub replication_manager_ready: bool,
    /// Replication-manager pods.
    pub replication_manager: ComponentStatus,
    /// View-syncer pods; desired is the autoscaler's choice when `cache.autoscale` is set.
    pub view_syncers: ComponentStatus,
    /// A new view-syncer spec waits for the replication-manager to be ready on its own.
    pub view_syncers_held: bool,
}

/// In-cluster endpoints.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// zero-cache, for Zero clients (put an Ingress in front of it for browsers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_cache: Option<String>,
    /// The change source's HTTP API (metadata, metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// A schema-less object: keeps the CRD small where the pod API validates the value anyway.
fn free_form_object(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    serde_json::from_value(serde_json::json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    }))
    .expect("valid object schema")
}

/// Conditions form a list map keyed by `type`, so server-side apply merges them per type.
fn conditions_schema(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    serde_json::from_value(serde_json::json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "properties": {
                "lastTransitionTime": { "format": "date-time", "type": "string" },
                "message": { "type": "string" },
                "observedGeneration": { "type": "integer", "format": "int64", "default": 0 },
                "reason": { "type": "string" },
                "status": { "type": "string" },
                "type": { "type": "string" }
            },
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
        },
    }))
    .expect("valid conditions schema")
}

impl ZeroStack {
    /// The condition of the given type, if the status has one.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }
}

/// The CRD, with every description as paragraphs: doc comments wrap at 100 columns, and
/// `kubectl explain` would print those line breaks mid-sentence.
pub fn crd() -> CustomResourceDefinition {
    let mut value = serde_json::to_value(ZeroStack::crd()).expect("the CRD serialises");
    unwrap_descriptions(&mut value);
    serde_json::from_value(value).expect("the CRD deserialises")
}

/// Rewrites every `description` string in a schema tree with [`paragraphs`].
fn unwrap_descriptions(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    serde_json::Value::String(s) if k == "description" => *s = paragraphs(s),
                    other => unwrap_descriptions(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// Joins the lines of each paragraph with spaces; paragraphs stay apart (blank line), and a line
/// starting a list item (`- `) starts a new line.
pub fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|para| {
            let mut out = String::new();
            for line in para.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if !out.is_empty() {
                    out.push(if line.starts_with("- ") { '\n' } else { ' ' });
                }
                out.push_str(line);
            }
            out
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_become_paragraphs() {
        assert_eq!(
            paragraphs("Zero app id. Names the\ntables. Immutable.\n\nSecond para\ngraph."),
            "Zero app id. Names the tables. Immutable.\n\nSecond para graph."
        );
        assert_eq!(paragraphs("a\n- one\n- two"), "a\n- one\n- two");
    }

    #[test]
    fn no_description_in_the_crd_breaks_mid_sentence() {
        let text = serde_json::to_string(&crd()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut found = 0;
        fn walk(v: &serde_json::Value, found: &mut usize) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, c) in m {
                        if k == "description"
                            && let Some(s) = c.as_str()
                        {
                            *found += 1;
                            for line in s.split("\n\n").flat_map(str::lines) {
                                assert!(line.starts_with("- ") || !line.is_empty(), "{s:?}");
                            }
                            assert!(
                                !s.split("\n\n")
                                    .any(|p| p.contains('\n') && !p.contains("\n- ")),
                                "a paragraph with a line break: {s:?}"
                            );
                        }
                        walk(c, found);
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, found)),
                _ => {}
            }
        }
        walk(&v, &mut found);
        assert!(found > 50, "only {found} descriptions");
        // The raw derive output does break lines (what this guards against).
        let raw = serde_json::to_string(&ZeroStack::crd()).unwrap();
        assert!(raw.contains("Names the replicated tables `<appId>_<shard>.*` and\\n"));
    }
}
