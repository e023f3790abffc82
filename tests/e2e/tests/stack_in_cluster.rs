//! The whole stack in pods on a real Kubernetes cluster, installed the way the README tells a
//! user to: `helm install` of the operator chart (real Helm, `--wait`; `watchNamespace` set, so
//! the operator runs with only the Role the chart grants in the stack's namespace, created
//! first), the dev databases of
//! `manifests/dev-databases.yaml`, the schema ConfigMap made with `zrocket export` and `kubectl
//! create configmap`, and the example ZeroStack of `manifests/zerostack.yaml` (its images
//! replaced by the ones of this run, see `zerostack_e2e::images`), until `kubectl wait
//! --for=condition=Ready`, with the NetworkPolicies the operator makes by default in place. A
//! fresh user signs up and takes an API token for the Node Zero client. Then, through
//! port-forwards, as named cases in order:
//!
//! 1. a MongoDB write reaches a real Zero client through zero-cache in the cluster;
//! 2. a message sent by one browser user (headless Chromium against the app's Service) appears
//!    for another;
//! 3. a valid schema change (a new optional column) rolls only the change-source pods, the
//!    status records it as `InPlace`, and the client keeps syncing;
//! 4. an invalid one leaves every pod running, with `SchemaValid=False`;
//! 5. killing the source pod and the zero-cache pod under a small write load loses no row and
//!    duplicates none (zero-cache's replica, read in its pod, equals MongoDB);
//! 6. `helm upgrade` with a changed value rolls the operator and nothing of the stack;
//! 7. `cache.viewSyncers: 2` (with a Litestream `file://` backup on a claim both roles mount):
//!    the single node gives way to a replication-manager and two view-syncers restored from its
//!    backup, and a Zero client through the view-syncer Service, and one on each view-syncer
//!    pod, see a new MongoDB row; then `cache.autoscale` adds a HorizontalPodAutoscaler and the
//!    operator leaves the view-syncers' `replicas` alone (none reset, a count set by another
//!    manager kept);
//! 8. deleting the ZeroStack removes every child and keeps the user's ConfigMap and Secrets;
//! 9. `helm uninstall` keeps the CRD.
//!
//! The cluster and the images come from `tests/cluster/with-cluster.sh` (the local cluster kit
//! in CI, kind in `tests/e2e/kind.sh`); without them the test prints one line and passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::doc;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use zerostack_e2e::images::Images;
use zerostack_e2e::manifests;
use zerostack_e2e::port_forward::PortForward;
use zerostack_harness::cases::Cases;
use zerostack_harness::cluster::{self, Cluster};
use zerostack_harness::stack::built_bin;
use zerostack_harness::{ManagedProcess, StateDir, free_port, http, node_dir, read_replica};
use zerostack_operator::crd::{SchemaChangeKind, ZeroStack};

const DEMO: &str = "zerostack-demo";
const SYSTEM: &str = "zerostack-system";
const RELEASE: &str = "zerostack-operator";
const STACK: &str = "zrocket";
const CRD: &str = "zerostacks.zerostack.dev";
/// The stack's children, as the operator labels them.
const CHILDREN: &str =
    "app.kubernetes.io/instance=zrocket,app.kubernetes.io/managed-by=zerostack-operator";

fn repo() -> PathBuf {
    zerostack_harness::repo_root()
}

/// Polls `f` every half second until it gives a value, or fails naming `what`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("timed out after {timeout:?} waiting for {what} (last error: {last})")
}

/// Everything the cases share.
struct Run {
    cluster: Cluster,
    client: Client,
    logs: PathBuf,
    export_dir: PathBuf,
    zero: PortForward,
    app: PortForward,
    mongo: mongodb::Database,
    _mongo_forward: PortForward,
    token: String,
    user_id: String,
}

impl Run {
    fn kubectl(&self, what: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut cmd = self.cluster.kubectl();
        cmd.args(args);
        cluster::run(what, &mut cmd, stdin)
    }

    fn stacks(&self) -> Api<ZeroStack> {
        Api::namespaced(self.client.clone(), DEMO)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), DEMO)
    }

    async fn condition(&self, type_: &str) -> anyhow::Result<Option<(String, String, String)>> {
        let zs = self.stacks().get(STACK).await?;
        let current =
            zs.status.as_ref().and_then(|s| s.observed_generation) == zs.metadata.generation;
        Ok(current
            .then(|| {
                zs.condition(type_)
                    .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
            })
            .flatten())
    }

    /// Waits until `SchemaValid` has `status` for the current generation; its condition.
    async fn wait_schema_valid(&self, status: &str) -> anyhow::Result<(String, String, String)> {
        eventually(
            &format!("SchemaValid={status}"),
            Duration::from_secs(120),
            || async {
                Ok(self
                    .condition("SchemaValid")
                    .await?
                    .filter(|c| c.0 == status))
            },
        )
        .await
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        eventually("the ZeroStack Ready", timeout, || async {
            Ok(self.condition("Ready").await?.filter(|c| c.0 == "True"))
        })
        .await
        .map(|_| ())
    }

    /// The pods of one component of the stack (`source`, `cache`, `app`), by name → uid.
    async fn pods(&self, component: &str) -> anyhow::Result<Vec<(String, String, bool)>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), DEMO);
        let lp = ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={STACK},app.kubernetes.io/component={component}"
        ));
        Ok(pods
            .list(&lp)
            .await?
            .items
            .into_iter()
            .map(|p| {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                (p.name_any(), p.uid().unwrap_or_default(), ready)
            })
            .collect())
    }

    /// The change-source Deployment's schema hash annotation.
    async fn source_hash(&self) -> anyhow::Result<String> {
        let d = self.deployments().get("zrocket-source").await?;
        d.spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .and_then(|a| a.get("zerostack.dev/schema-hash").cloned())
            .context("the source Deployment has no schema hash")
    }

    async fn generations(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for name in ["zrocket-source", "zrocket-cache", "zrocket-app"] {
            let d = self.deployments().get(name).await?;
            out.push((name.to_string(), d.metadata.generation.unwrap_or(0)));
        }
        Ok(out)
    }

    /// A public channel written straight into MongoDB, as another app would.
    async fn insert_channel(&self, id: &str) -> anyhow::Result<()> {
        let now = bson::DateTime::now();
        self.mongo
            .collection::<bson::Document>("rooms")
            .insert_one(doc! {
                "_id": id, "t": "c", "name": id, "readOnly": false, "archived": false,
                "memberIds": ["u-alice"], "usernames": ["alice"], "messageCount": 0i64,
                "createdBy": "u-alice", "createdAt": now, "updatedAt": now,
            })
            .await?;
        Ok(())
    }

    /// A Zero client in Node subscribed to the named query `rooms.publicChannels` as alice,
    /// exiting 0 once a channel named `until` arrives.
    fn zero_client(
        &self,
        name: &str,
        until: &str,
        timeout: Duration,
    ) -> anyhow::Result<ManagedProcess> {
        self.zero_client_at(&self.zero.url(), name, until, timeout)
    }

    /// [`Run::zero_client`] against the zero-cache at `url`.
    fn zero_client_at(
        &self,
        url: &str,
        name: &str,
        until: &str,
        timeout: Duration,
    ) -> anyhow::Result<ManagedProcess> {
        let dir = node_dir();
        let mut cmd = Command::new(zerostack_harness::paths::node_bin());
        cmd.arg(dir.join("zero-client.mjs"))
            .args(["--url", url])
            .arg("--schema")
            .arg(self.export_dir.join("schema.json"))
            .args([
                "--table",
                "channels",
                "--query",
                "rooms.publicChannels",
                "--args",
                "{}",
            ])
            .args(["--auth", &self.token, "--user-id", &self.user_id])
            .args(["--until-json", &json!({"name": until}).to_string()])
            .args(["--timeout-ms", &timeout.as_millis().to_string()])
            .current_dir(&dir);
        ManagedProcess::spawn(name, cmd, &self.logs)
    }

    /// Waits until the client printed its first complete result (so later writes arrive as
    /// changes, not in the initial result).
    async fn until_complete(&self, client: &mut ManagedProcess) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if client.log_contains(r#""resultType":"complete""#) {
                return Ok(());
            }
            if !client.is_running() {
                bail!("the Zero client exited early\n{}", client.log_tail(30));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "the Zero client got no complete result\n{}",
            client.log_tail(30)
        )
    }

    async fn until_seen(client: &mut ManagedProcess, timeout: Duration) -> anyhow::Result<()> {
        match client.wait_exit(timeout).await {
            Ok(Some(0)) => Ok(()),
            Ok(code) => bail!(
                "the Zero client exited with {code:?}\n{}",
                client.log_tail(40)
            ),
            Err(e) => bail!("{e:#}\n{}", client.log_tail(40)),
        }
    }

    /// The user's schema ConfigMap's `schema.json`.
    async fn user_schema(&self) -> anyhow::Result<String> {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), DEMO);
        cms.get("zrocket-schema")
            .await?
            .data
            .and_then(|d| d.get("schema.json").cloned())
            .context("zrocket-schema has no schema.json")
    }

    async fn set_user_schema(&self, text: &str) -> anyhow::Result<()> {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), DEMO);
        cms.patch(
            "zrocket-schema",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"schema.json": text}})),
        )
        .await?;
        Ok(())
    }

    /// zero-cache's replica, copied out of its pod and read with zero-cache's own SQLite.
    async fn replica(&self) -> anyhow::Result<Value> {
        let pod = self
            .pods("cache")
            .await?
            .into_iter()
            .find(|p| p.2)
            .context("no ready zero-cache pod")?
            .0;
        let dir = tempfile_dir(&self.logs, "replica")?;
        self.kubectl(
            "kubectl cp the replica",
            &[
                "-n",
                DEMO,
                "cp",
                "-c",
                "zero-cache",
                &format!("{pod}:/data"),
                dir.to_str().unwrap(),
            ],
            None,
        )?;
        read_replica(&dir.join("replica.db")).await
    }
}

fn tempfile_dir(base: &Path, name: &str) -> anyhow::Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = base.join(format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn kube_client(cluster: &Cluster) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stack_runs_in_a_real_cluster() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::get("stack_in_cluster") else {
        return Ok(());
    };
    let images = match Images::from_env() {
        Ok(images) => images,
        Err(why) if std::env::var(cluster::REQUIRED).is_ok_and(|v| v == "1") => {
            bail!("{}=1 but {why}", cluster::REQUIRED)
        }
        Err(why) => {
            println!("stack_in_cluster: skipped: {why}");
            return Ok(());
        }
    };
    let started = Instant::now();
    let state = StateDir::temp()?;
    let logs = state.path().to_path_buf();
    let client = kube_client(&cluster).await?;
    let crd_was_there = clean_slate(&cluster, &client).await?;

    let outcome = scenario(&cluster, &client, images, &logs).await;
    if outcome.is_err() {
        println!("{}", diagnostics(&cluster));
    }
    if std::env::var_os("ZEROSTACK_E2E_KEEP").is_some() {
        println!("stack_in_cluster: ZEROSTACK_E2E_KEEP is set: the stack stays; logs in {logs:?}");
        state.keep();
        return outcome;
    }
    // Whatever happened: nothing of this run stays in the cluster.
    let _ = helm(
        &cluster,
        "helm uninstall",
        &["uninstall", RELEASE, "-n", SYSTEM, "--wait"],
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [DEMO, SYSTEM] {
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
    if !crd_was_there {
        // And it is gone before the next test may look for it.
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let _ = crds.delete(CRD, &Default::default()).await;
        let _ = eventually("the CRD deleted", Duration::from_secs(120), || async {
            Ok(crds.get_opt(CRD).await?.is_none().then_some(()))
        })
        .await;
    }
    println!(
        "stack_in_cluster: {} in {:.0} s",
        if outcome.is_ok() { "passed" } else { "failed" },
        started.elapsed().as_secs_f64()
    );
    outcome
}

fn helm(cluster: &Cluster, what: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = cluster.helm();
    cmd.args(args);
    cluster::run(what, &mut cmd, None)
}

/// Removes what an earlier, interrupted run left behind; says whether the CRD was already there
/// (then it stays at the end). A CRD that Helm does not manage belongs to someone else: the run
/// stops rather than take it over.
async fn clean_slate(cluster: &Cluster, client: &Client) -> anyhow::Result<bool> {
    let _ = helm(
        cluster,
        "helm uninstall",
        &["uninstall", RELEASE, "-n", SYSTEM, "--wait"],
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [DEMO, SYSTEM] {
        let _ = namespaces.delete(ns, &Default::default()).await;
        eventually(
            &format!("namespace {ns} gone"),
            Duration::from_secs(180),
            || async { Ok(namespaces.get_opt(ns).await?.is_none().then_some(())) },
        )
        .await?;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // A CRD another test is deleting is waited out.
    eventually("no CRD being deleted", Duration::from_secs(120), || async {
        let terminating = crds
            .get_opt(CRD)
            .await?
            .is_some_and(|c| c.metadata.deletion_timestamp.is_some());
        Ok((!terminating).then_some(()))
    })
    .await?;
    match crds.get_opt(CRD).await? {
        None => Ok(false),
        Some(crd)
            if crd
                .labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str)
                == Some("Helm") =>
        {
            Ok(true)
        }
        Some(_) => bail!(
            "the CRD {CRD} exists and Helm does not manage it; this test installs it with the chart \
             and will not take it over (delete it, or run against another cluster)"
        ),
    }
}

async fn scenario(
    cluster: &Cluster,
    client: &Client,
    images: Images,
    logs: &Path,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let step = |what: &str| {
        println!(
            "[stack_in_cluster] {what} ({:.0} s)",
            t.elapsed().as_secs_f64()
        )
    };
    let root = repo();

    step("helm install the operator");
    let kubectl = |what: &str, args: &[&str], stdin: Option<&str>| {
        let mut cmd = cluster.kubectl();
        cmd.args(args);
        cluster::run(what, &mut cmd, stdin)
    };
    // With watchNamespace the chart grants a Role in that namespace, so it must exist first
    // (the README says so); the dev databases' manifest then finds it there.
    kubectl(
        "the stack's namespace",
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {DEMO}\n"
        )),
    )?;
    let (repository, tag) = images
        .operator
        .rsplit_once(':')
        .context("operator image tag")?;
    helm(
        cluster,
        "helm install",
        &[
            "upgrade",
            "--install",
            RELEASE,
            root.join("charts/zerostack-operator").to_str().unwrap(),
            "--namespace",
            SYSTEM,
            "--create-namespace",
            "--set",
            &format!("image.repository={repository}"),
            "--set-string",
            &format!("image.tag={tag}"),
            "--set",
            &format!("image.pullPolicy={}", images.pull_policy),
            // Only this run's namespace: other tests' ZeroStacks are not this operator's.
            "--set",
            &format!("watchNamespace={DEMO}"),
            "--wait",
            "--timeout",
            "5m",
        ],
    )?;
    kubectl(
        "CRD established",
        &[
            "wait",
            "--for=condition=Established",
            &format!("crd/{CRD}"),
            "--timeout=60s",
        ],
        None,
    )?;

    step("the dev databases");
    let dbs = std::fs::read_to_string(root.join("manifests/dev-databases.yaml"))?;
    let dbs = manifests::to_yaml(&manifests::dev_databases(&dbs, &images)?);
    kubectl(
        "apply the dev databases",
        &["apply", "--server-side", "-f", "-"],
        Some(&dbs),
    )?;
    kubectl(
        "MongoDB",
        &[
            "-n",
            DEMO,
            "rollout",
            "status",
            "statefulset/mongodb",
            "--timeout=5m",
        ],
        None,
    )?;
    kubectl(
        "the replica set",
        &[
            "-n",
            DEMO,
            "wait",
            "--for=condition=complete",
            "job/mongodb-rs-init",
            "--timeout=5m",
        ],
        None,
    )?;
    kubectl(
        "PostgreSQL",
        &[
            "-n",
            DEMO,
            "rollout",
            "status",
            "deploy/postgres",
            "--timeout=5m",
        ],
        None,
    )?;

    step("the schema ConfigMap and the ZeroStack");
    let export_dir = logs.join("schema");
    let out = Command::new(built_bin("zrocket")?)
        .args(["export", "--out"])
        .arg(&export_dir)
        .output()?;
    if !out.status.success() {
        bail!(
            "zrocket export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kubectl(
        "kubectl create configmap",
        &[
            "-n",
            DEMO,
            "create",
            "configmap",
            "zrocket-schema",
            &format!("--from-file={}", export_dir.display()),
        ],
        None,
    )?;
    // As the README says: the label puts the ConfigMap under the operator's watch, so the
    // schema-change cases see their edits roll at once rather than on the next periodic look.
    kubectl(
        "kubectl label configmap",
        &[
            "-n",
            DEMO,
            "label",
            "configmap",
            "zrocket-schema",
            "zerostack.dev/schema=true",
        ],
        None,
    )?;
    let zero_port = free_port();
    let example = std::fs::read_to_string(root.join("manifests/zerostack.yaml"))?;
    let zs = manifests::zerostack(&example, &images, &format!("http://127.0.0.1:{zero_port}"))?;
    kubectl(
        "apply the ZeroStack",
        &["apply", "--server-side", "-f", "-"],
        Some(&manifests::to_yaml(&[zs])),
    )?;
    kubectl(
        "SchemaValid",
        &[
            "-n",
            DEMO,
            "wait",
            &format!("zerostack/{STACK}"),
            "--for=condition=SchemaValid",
            "--timeout=2m",
        ],
        None,
    )?;
    kubectl(
        "Ready",
        &[
            "-n",
            DEMO,
            "wait",
            &format!("zerostack/{STACK}"),
            "--for=condition=Ready",
            "--timeout=10m",
        ],
        None,
    )?;
    step("the ZeroStack is Ready");
    // NetworkPolicies are on by default: every case below runs with them in place.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), DEMO);
    let mut names: Vec<String> = policies
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    if names != [format!("{STACK}-cache"), format!("{STACK}-source")] {
        bail!("the example stack's NetworkPolicies are {names:?}");
    }

    let zero =
        PortForward::start_on(cluster, DEMO, "svc/zrocket-cache", zero_port, 4848, logs).await?;
    let app = PortForward::start(cluster, DEMO, "svc/zrocket-app", 8011, logs).await?;
    let mongo_forward = PortForward::start(cluster, DEMO, "pod/mongodb-0", 27017, logs).await?;
    let mongo = mongodb::Client::with_uri_str(format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        mongo_forward.port
    ))
    .await?
    .database("zrocket");
    // The demo data (the public channels the Zero client reads beside its own) needs a sign-in
    // through REST, so the seed runs inside the app's pod (same image, same MONGODB_URI).
    kubectl(
        "zrocket seed",
        &[
            "-n",
            DEMO,
            "exec",
            "deploy/zrocket-app",
            "--",
            "/usr/local/bin/zrocket",
            "seed",
        ],
        None,
    )?;
    let (token, user_id) = sign_in(&app.url()).await?;
    // The example sets `app.devLogin: true`: the dev login answers (a seeded user, a cookie).
    let dev = http::Client::new()
        .post(format!("{}/api/auth/dev-login", app.url()))
        .json(&json!({"username": "alice"}))
        .send()
        .await?;
    if !dev.status().is_success() || dev.headers().get("set-cookie").is_none() {
        bail!(
            "the example's devLogin: true did not reach the app: {} {}",
            dev.status(),
            dev.text()
        );
    }

    let run = Run {
        cluster: cluster.clone(),
        client: client.clone(),
        logs: logs.to_path_buf(),
        export_dir,
        zero,
        app,
        mongo,
        _mongo_forward: mongo_forward,
        token,
        user_id,
    };
    let mut cases = Cases::new("stack_in_cluster");
    cases
        .run(
            "a MongoDB write reaches a Zero client",
            a_write_reaches_a_zero_client(&run),
        )
        .await;
    cases
        .run(
            "a message one browser user sends appears for another",
            browsers_chat(&run),
        )
        .await;
    cases
        .run(
            "a valid schema change rolls only the source, and the client keeps syncing",
            valid_schema_change(&run),
        )
        .await;
    cases
        .run(
            "an invalid schema change leaves every pod running with SchemaValid=False",
            invalid_schema_change(&run),
        )
        .await;
    cases
        .run(
            "killing the source and zero-cache pods under load loses and duplicates nothing",
            kill_under_load(&run),
        )
        .await;
    cases
        .run(
            "helm upgrade with a changed value rolls the operator and nothing else",
            helm_upgrade(&run),
        )
        .await;
    cases
        .run(
            "viewSyncers: 2: clients through the view-syncer Service and on each view-syncer see a new row",
            view_syncers(&run),
        )
        .await;
    cases
        .run(
            "deleting the ZeroStack removes its children and keeps the user's objects",
            delete_the_stack(&run),
        )
        .await;
    cases
        .run("helm uninstall keeps the CRD", helm_uninstall(&run))
        .await;
    step(&format!(
        "done; the port-forward to zero-cache was started again {} times",
        run.zero.restarts()
    ));
    cases.finish()
}

/// An API client's sign-in, as the README describes it: sign up a fresh user, then trade the
/// password for a bearer token (`POST /api/auth/token`), which the Node Zero client sends.
async fn sign_in(app: &str) -> anyhow::Result<(String, String)> {
    let client = http::Client::new();
    let username = format!("e2e_{}", free_port());
    let password = format!("e2e-password-{}-{}", std::process::id(), free_port());
    let signup = client
        .post(format!("{app}/api/auth/signup"))
        .json(&json!({"username": username, "name": "E2E", "password": password}))
        .send()
        .await?;
    if !signup.status().is_success() {
        bail!("sign-up: {} {}", signup.status(), signup.text());
    }
    let answer = client
        .post(format!("{app}/api/auth/token"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!(
            "POST /api/auth/token: {} {}",
            answer.status(),
            answer.text()
        );
    }
    let body = answer.json()?;
    let field = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .with_context(|| format!("POST /api/auth/token answered {body}"))
    };
    Ok((field(&body["token"])?, field(&body["user"]["_id"])?))
}

async fn a_write_reaches_a_zero_client(run: &Run) -> anyhow::Result<()> {
    let mark = format!("e2e-{}", free_port());
    let mut client = run.zero_client("zero-client-write", &mark, Duration::from_secs(120))?;
    run.until_complete(&mut client).await?;
    run.insert_channel(&mark).await?;
    Run::until_seen(&mut client, Duration::from_secs(130)).await
}

async fn browsers_chat(run: &Run) -> anyhow::Result<()> {
    let artifacts = repo().join("tests/artifacts/cluster");
    let mut cmd = Command::new(zerostack_harness::paths::node_bin());
    cmd.arg(node_dir().join("browser-chat.mjs"))
        .env("APP_URL", run.app.url())
        .env("ARTIFACTS_DIR", &artifacts)
        .current_dir(repo());
    let mut browser = ManagedProcess::spawn("browser-chat", cmd, &run.logs)?;
    let outcome = browser.wait_exit(Duration::from_secs(300)).await;
    let _ = browser.terminate().await;
    match outcome {
        Ok(Some(0)) => Ok(()),
        other => bail!(
            "browser-chat.mjs: {other:?}; screenshots in {}\n{}",
            artifacts.display(),
            browser.log_tail(60)
        ),
    }
}

async fn valid_schema_change(run: &Run) -> anyhow::Result<()> {
    let hash_before = run.source_hash().await?;
    let generations = run.generations().await?;
    let cache_pods = run.pods("cache").await?;
    let app_pods = run.pods("app").await?;
    let source_pods = run.pods("source").await?;
    // A client connected across the change, waiting for a channel written after it.
    let mark = format!("after-schema-{}", free_port());
    let mut client = run.zero_client("zero-client-schema", &mark, Duration::from_secs(420))?;
    run.until_complete(&mut client).await?;

    let mut schema: Value = serde_json::from_str(&run.user_schema().await?)?;
    schema["tables"]["users"]["columns"]["nickname"] =
        json!({"type": "string", "optional": true, "customType": null});
    run.set_user_schema(&serde_json::to_string_pretty(&schema)?)
        .await?;

    let hash_after = eventually(
        "a new schema hash on the source",
        Duration::from_secs(120),
        || async {
            let h = run.source_hash().await?;
            Ok((h != hash_before).then_some(h))
        },
    )
    .await?;
    eventually("the new source pods", Duration::from_secs(300), || async {
        let pods = run.pods("source").await?;
        Ok((pods
            .iter()
            .all(|p| p.2 && !source_pods.iter().any(|o| o.1 == p.1))
            && !pods.is_empty())
        .then_some(()))
    })
    .await?;
    run.wait_ready(Duration::from_secs(600)).await?;
    let after = run.generations().await?;
    for ((name, before), (_, now)) in generations.iter().zip(&after) {
        if name != "zrocket-source" && before != now {
            bail!("{name} changed generation {before} → {now}: only the source should roll");
        }
    }
    for (component, before) in [("cache", &cache_pods), ("app", &app_pods)] {
        let now = run.pods(component).await?;
        let uids = |v: &[(String, String, bool)]| v.iter().map(|p| p.1.clone()).collect::<Vec<_>>();
        if uids(before) != uids(&now) {
            bail!("the {component} pods were replaced: {before:?} → {now:?}");
        }
    }
    let st = run.stacks().get(STACK).await?.status.context("status")?;
    if st.schema_hash.as_deref() != Some(hash_after.as_str()) {
        bail!(
            "status.schemaHash {:?}, the source runs {hash_after}",
            st.schema_hash
        );
    }
    // A new optional column is one the source applies in place (README, "Schema changes").
    let change = st
        .last_schema_change
        .context("no status.lastSchemaChange after a schema change")?;
    if change.kind != SchemaChangeKind::InPlace
        || change.from_hash != hash_before
        || change.to_hash != hash_after
        || !change.steps.iter().any(|s| s.contains("nickname"))
    {
        bail!(
            "status.lastSchemaChange {change:?}, expected InPlace {hash_before} → {hash_after} adding nickname"
        );
    }
    run.insert_channel(&mark).await?;
    Run::until_seen(&mut client, Duration::from_secs(300)).await?;
    println!(
        "[stack_in_cluster] the client connected across the change {}",
        if client.log_contains(r#""event":"reload""#) {
            "reloaded (zero-cache rebuilt its replica) and synced again"
        } else {
            "kept its state"
        }
    );
    Ok(())
}

async fn invalid_schema_change(run: &Run) -> anyhow::Result<()> {
    let good = run.user_schema().await?;
    let hash = run.source_hash().await?;
    let mut before = Vec::new();
    for c in ["source", "cache", "app"] {
        before.push((c, run.pods(c).await?));
    }
    run.set_user_schema("{\"tables\": {\"users\": {\"primaryKey\": [\"nope\"]}}}")
        .await?;
    let (_, reason, message) = run.wait_schema_valid("False").await?;
    if !message.contains("zrocket-schema") {
        bail!("the message does not name the ConfigMap ({reason}): {message}");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    if run.source_hash().await? != hash {
        bail!("an invalid schema rolled the source");
    }
    for (c, pods) in &before {
        let now = run.pods(c).await?;
        if &now != pods || now.iter().any(|p| !p.2) {
            bail!("the {c} pods changed or are not ready: {pods:?} → {now:?}");
        }
    }
    // Put the good schema back: valid again, and nothing rolls (it is the one running).
    run.set_user_schema(&good).await?;
    run.wait_schema_valid("True").await?;
    if run.source_hash().await? != hash {
        bail!("restoring the running schema rolled the source");
    }
    Ok(())
}

async fn kill_under_load(run: &Run) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let rooms = run.mongo.collection::<bson::Document>("rooms");
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut failures = 0u32;
            // A small, bounded load: about 20 writes a second, at most 2,000.
            for i in 0..2000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = format!("load-{i:05}");
                let now = bson::DateTime::now();
                match rooms
                    .insert_one(doc! {"_id": &id, "t": "c", "name": &id, "readOnly": false,
                        "archived": false, "memberIds": ["u-alice"], "usernames": ["alice"],
                        "messageCount": 0i64, "createdBy": "u-alice", "createdAt": now, "updatedAt": now})
                    .await
                {
                    Ok(_) => {
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            failures
        })
    };
    let kill = |component: &'static str| async move {
        let pods = run.pods(component).await?;
        for (name, _, _) in &pods {
            run.kubectl(
                "kill a pod",
                &[
                    "-n",
                    DEMO,
                    "delete",
                    "pod",
                    name,
                    "--grace-period=0",
                    "--force",
                    "--wait=false",
                ],
                None,
            )?;
        }
        anyhow::Ok(pods)
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let killed_source = kill("source").await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let killed_cache = kill("cache").await?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.store(true, Ordering::Relaxed);
    let failures = writer.await?;
    let written = written.load(Ordering::Relaxed);
    println!("[stack_in_cluster] {written} writes under the kills ({failures} failed writes)");
    if written < 100 {
        bail!("only {written} writes went in");
    }

    // New pods replace the killed ones and the stack is Ready again.
    for (component, killed) in [("source", &killed_source), ("cache", &killed_cache)] {
        eventually(
            &format!("new {component} pods"),
            Duration::from_secs(300),
            || async {
                let pods = run.pods(component).await?;
                Ok((!pods.is_empty()
                    && pods
                        .iter()
                        .all(|p| p.2 && !killed.iter().any(|k| k.1 == p.1)))
                .then_some(()))
            },
        )
        .await?;
    }
    run.wait_ready(Duration::from_secs(600)).await?;
    run.zero.wait_answering(Duration::from_secs(60)).await?;

    // zero-cache's replica equals MongoDB: every row, once.
    let mut mongo_rows: Vec<(String, String)> = Vec::new();
    let mut cursor = run
        .mongo
        .collection::<bson::Document>("rooms")
        .find(doc! {"_id": {"$regex": "^load-"}})
        .await?;
    use futures::TryStreamExt as _;
    while let Some(d) = cursor.try_next().await? {
        mongo_rows.push((
            d.get_str("_id")?.to_string(),
            d.get_str("name")?.to_string(),
        ));
    }
    mongo_rows.sort();
    eventually(
        "the replica equal to MongoDB",
        Duration::from_secs(300),
        || async {
            let replica = run.replica().await?;
            let mut rows: Vec<(String, String)> = replica["channels"]
                .as_array()
                .context("no channels table in the replica")?
                .iter()
                .filter_map(|r| {
                    Some((
                        r["_id"].as_str()?.to_string(),
                        r["name"].as_str()?.to_string(),
                    ))
                })
                .filter(|(id, _)| id.starts_with("load-"))
                .collect();
            rows.sort();
            if rows == mongo_rows {
                return Ok(Some(()));
            }
            let missing = mongo_rows.iter().filter(|r| !rows.contains(r)).count();
            let extra = rows.len() as i64 - (mongo_rows.len() - missing) as i64;
            anyhow::bail!(
                "replica has {} load rows, MongoDB {} ({missing} missing, {extra} not in MongoDB)",
                rows.len(),
                mongo_rows.len()
            )
        },
    )
    .await
}

async fn helm_upgrade(run: &Run) -> anyhow::Result<()> {
    let operator: Api<Deployment> = Api::namespaced(run.client.clone(), SYSTEM);
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), SYSTEM);
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"));
    let uids = || async {
        anyhow::Ok(
            pods.list(&lp)
                .await?
                .items
                .iter()
                .filter_map(|p| p.uid())
                .collect::<Vec<String>>(),
        )
    };
    let before = uids().await?;
    let generations = run.generations().await?;
    helm(
        &run.cluster,
        "helm upgrade",
        &[
            "upgrade",
            RELEASE,
            repo().join("charts/zerostack-operator").to_str().unwrap(),
            "-n",
            SYSTEM,
            "--reuse-values",
            "--set",
            "logging.level=debug",
            "--wait",
            "--timeout",
            "5m",
        ],
    )?;
    let d = operator.get(RELEASE).await?;
    let env = d
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    if !env
        .iter()
        .any(|e| e.name == "LOG_LEVEL" && e.value.as_deref() == Some("debug"))
    {
        bail!("the operator's LOG_LEVEL is not debug after the upgrade: {env:?}");
    }
    eventually(
        "the old operator pods gone",
        Duration::from_secs(120),
        || async {
            let now = uids().await?;
            Ok((!now.is_empty() && now.iter().all(|u| !before.contains(u))).then_some(()))
        },
    )
    .await?;
    // The new operator reconciles the stack and changes nothing of it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    run.wait_ready(Duration::from_secs(120)).await?;
    if run.generations().await? != generations {
        bail!(
            "the upgrade changed the stack's Deployments: {generations:?} → {:?}",
            run.generations().await?
        );
    }
    Ok(())
}

/// The running stack switched to a replication-manager and two view-syncers. The backup is
/// Litestream's `file://` replica on a claim both roles mount (`cache.backup.volumeClaimName`):
/// the kit has no object storage, and its storage is one node's host folder, so a
/// ReadWriteOnce claim is shared by every pod; on a real cluster this is an `s3://` URL (or a
/// ReadWriteMany class). View-syncers cannot run without a backup: zero-cache 1.9.0 gives them
/// their replica only by a restore from it.
async fn view_syncers(run: &Run) -> anyhow::Result<()> {
    run.kubectl(
        "the backup claim",
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: zero-backups\n  \
             namespace: {DEMO}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    \
             requests:\n      storage: 1Gi\n"
        )),
    )?;
    run.stacks()
        .patch(
            STACK,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cache": {
                "viewSyncers": 2,
                "backup": {"url": "file:///backup/zrocket", "volumeClaimName": "zero-backups"},
                // Litestream ships WAL changes every 15 minutes by default; a view-syncer
                // catches up from the change stream anyway, but its first restore waits for
                // the replication-manager's first backup to land.
                "env": [{"name": "ZERO_LITESTREAM_INCREMENTAL_BACKUP_INTERVAL_MINUTES",
                         "value": "0.02"}],
            }}})),
        )
        .await?;
    let started = Instant::now();
    run.wait_ready(Duration::from_secs(600)).await?;
    println!(
        "[stack_in_cluster] viewSyncers: 2 Ready in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let st = run.stacks().get(STACK).await?.status.context("no status")?;
    let t = st.cache_topology.context("no status.cacheTopology")?;
    if !t.replication_manager_ready
        || t.view_syncers.ready_replicas != 2
        || t.view_syncers.replicas != 2
        || t.view_syncers_held
    {
        bail!("status.cacheTopology: {t:?}");
    }
    if run.deployments().get_opt("zrocket-cache").await?.is_some() {
        bail!("the single-node Deployment is still there beside the topology");
    }
    let rm = run.pods("replication-manager").await?;
    let vs = run.pods("view-syncer").await?;
    if rm.len() != 1 || !rm[0].2 || vs.len() != 2 || !vs.iter().all(|p| p.2) {
        bail!("pods: replication-manager {rm:?}, view-syncers {vs:?}");
    }
    // The backup the view-syncers restored from is on the claim.
    let listing = run.kubectl(
        "the backup folder",
        &[
            "-n",
            DEMO,
            "exec",
            &format!("pod/{}", rm[0].0),
            "-c",
            "zero-cache",
            "--",
            "ls",
            "-R",
            "/backup/zrocket",
        ],
        None,
    )?;
    if !listing.contains(".ltx") {
        bail!("no Litestream files in /backup/zrocket:\n{listing}");
    }

    let mark = format!("e2e-vs-{}", free_port());
    let service =
        PortForward::start(&run.cluster, DEMO, "svc/zrocket-cache", 4848, &run.logs).await?;
    let mut forwards = vec![("service", service)];
    for (i, pod) in vs.iter().enumerate() {
        let name = if i == 0 {
            "view-syncer-0"
        } else {
            "view-syncer-1"
        };
        let pf = PortForward::start(
            &run.cluster,
            DEMO,
            &format!("pod/{}", pod.0),
            4848,
            &run.logs,
        )
        .await?;
        forwards.push((name, pf));
    }
    let mut clients = Vec::new();
    for (name, pf) in &forwards {
        let mut c = run.zero_client_at(
            &pf.url(),
            &format!("zero-client-{name}"),
            &mark,
            Duration::from_secs(180),
        )?;
        run.until_complete(&mut c)
            .await
            .with_context(|| format!("the client on {name}"))?;
        clients.push((name, c));
    }
    let written = Instant::now();
    run.insert_channel(&mark).await?;
    for (name, c) in &mut clients {
        Run::until_seen(c, Duration::from_secs(180))
            .await
            .with_context(|| format!("the client on {name}"))?;
        println!(
            "[stack_in_cluster] the client on {name} saw the row {:.1} s after the write",
            written.elapsed().as_secs_f64()
        );
    }
    autoscaled_view_syncers(run).await
}

/// `cache.autoscale` on the running view-syncers, against the real API server's server-side
/// apply: the HorizontalPodAutoscaler appears, the Deployment keeps its 2 pods while the
/// operator stops sending `replicas` (no reset to 1), and a count set by someone else (here
/// `kubectl scale`, standing in for the autoscaler, which has no metrics in the kit) survives
/// the operator's reconciles.
async fn autoscaled_view_syncers(run: &Run) -> anyhow::Result<()> {
    let replicas = || async {
        anyhow::Ok(
            run.deployments()
                .get("zrocket-view-syncer")
                .await?
                .spec
                .replicas
                .unwrap_or(1),
        )
    };
    run.stacks()
        .patch(
            STACK,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cache": {
                "autoscale": {"minReplicas": 2, "maxReplicas": 4, "targetCPU": 80},
            }}})),
        )
        .await?;
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(run.client.clone(), DEMO);
    let hpa = eventually("the autoscaler", Duration::from_secs(60), || async {
        Ok(hpas.get_opt("zrocket-view-syncer").await?)
    })
    .await?;
    if hpa.spec.scale_target_ref.name != "zrocket-view-syncer" || hpa.spec.max_replicas != 4 {
        bail!("the autoscaler: {:?}", hpa.spec);
    }
    // Every reconcile of the change (and the ones its own writes bring) keeps the 2 pods.
    let watch_until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < watch_until {
        let n = replicas().await?;
        if n != 2 {
            bail!("the view-syncers' replicas went to {n} when the autoscaler was turned on");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.kubectl(
        "kubectl scale the view-syncers",
        &[
            "-n",
            DEMO,
            "scale",
            "deploy/zrocket-view-syncer",
            "--replicas=3",
        ],
        None,
    )?;
    // The scale itself is a watch event of an owned Deployment, so the operator reconciles;
    // an annotation on the ZeroStack brings one more.
    run.kubectl(
        "annotate the ZeroStack",
        &[
            "-n",
            DEMO,
            "annotate",
            "--overwrite",
            &format!("zerostack/{STACK}"),
            &format!("e2e/poke={}", free_port()),
        ],
        None,
    )?;
    let watch_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < watch_until {
        let n = replicas().await?;
        if n != 3 {
            bail!("the operator changed the autoscaled view-syncers' replicas from 3 to {n}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The status follows the count (the kit's 2 cores leave no room to schedule a third
    // view-syncer beside everything else, so it is not waited for).
    eventually(
        "status.cacheTopology with 3 view-syncers desired",
        Duration::from_secs(120),
        || async {
            let st = run.stacks().get(STACK).await?.status;
            Ok(st
                .and_then(|s| s.cache_topology)
                .filter(|t| t.view_syncers.replicas == 3))
        },
    )
    .await?;
    run.kubectl(
        "kubectl scale the view-syncers back",
        &[
            "-n",
            DEMO,
            "scale",
            "deploy/zrocket-view-syncer",
            "--replicas=2",
        ],
        None,
    )?;
    run.wait_ready(Duration::from_secs(300)).await?;
    let n = replicas().await?;
    if n != 2 {
        bail!("the view-syncers' replicas are {n} after scaling back to 2");
    }
    Ok(())
}

/// `Kind name` of every object of kind `K` in the demo namespace that `lp` selects.
async fn names<K>(client: &Client, lp: &ListParams) -> anyhow::Result<Vec<String>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).into_owned();
    Ok(Api::<K>::namespaced(client.clone(), DEMO)
        .list(lp)
        .await?
        .items
        .iter()
        .map(|o| format!("{kind} {}", o.name_any()))
        .collect())
}

async fn delete_the_stack(run: &Run) -> anyhow::Result<()> {
    run.kubectl(
        "delete the ZeroStack",
        &[
            "-n",
            DEMO,
            "delete",
            "zerostack",
            STACK,
            "--wait=true",
            "--timeout=3m",
        ],
        None,
    )?;
    let lp = ListParams::default().labels(CHILDREN);
    eventually("every child gone", Duration::from_secs(300), || async {
        let c = &run.client;
        let pods = ListParams::default().labels(&format!("app.kubernetes.io/instance={STACK}"));
        let mut left: Vec<String> = Vec::new();
        left.extend(names::<Deployment>(c, &lp).await?);
        left.extend(names::<k8s_openapi::api::core::v1::Service>(c, &lp).await?);
        left.extend(names::<ConfigMap>(c, &lp).await?);
        left.extend(names::<Secret>(c, &lp).await?);
        left.extend(names::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(c, &lp).await?);
        left.extend(names::<Pod>(c, &pods).await?);
        if left.is_empty() {
            return Ok(Some(()));
        }
        anyhow::bail!("still there: {}", left.join(", "))
    })
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(run.client.clone(), DEMO);
    let schema = cms
        .get("zrocket-schema")
        .await
        .context("the user's ConfigMap is gone")?;
    if !schema.owner_references().is_empty() {
        bail!(
            "the user's ConfigMap carries owner references: {:?}",
            schema.owner_references()
        );
    }
    let secrets: Api<Secret> = Api::namespaced(run.client.clone(), DEMO);
    for name in ["mongodb", "postgres"] {
        secrets
            .get(name)
            .await
            .with_context(|| format!("the user's Secret {name} is gone"))?;
    }
    Ok(())
}

async fn helm_uninstall(run: &Run) -> anyhow::Result<()> {
    helm(
        &run.cluster,
        "helm uninstall",
        &["uninstall", RELEASE, "-n", SYSTEM, "--wait"],
    )?;
    let operator: Api<Deployment> = Api::namespaced(run.client.clone(), SYSTEM);
    if operator.get_opt(RELEASE).await?.is_some() {
        bail!("the operator Deployment is still there");
    }
    let crds: Api<CustomResourceDefinition> = Api::all(run.client.clone());
    let crd = crds
        .get_opt(CRD)
        .await?
        .context("helm uninstall deleted the CRD")?;
    if crd.metadata.deletion_timestamp.is_some() {
        bail!("the CRD is being deleted");
    }
    Ok(())
}

/// What a failing run needs to be understood, printed once.
fn diagnostics(cluster: &Cluster) -> String {
    let mut out = String::from("=== cluster diagnostics ===\n");
    let mut kubectl = |args: &[&str]| {
        let mut cmd = cluster.kubectl();
        cmd.args(args);
        let text = cluster::run("diagnostics", &mut cmd, None).unwrap_or_else(|e| format!("{e:#}"));
        out.push_str(&format!(
            "$ kubectl {}\n{}\n",
            args.join(" "),
            tail_lines(&text, 80)
        ));
    };
    kubectl(&[
        "get",
        "zerostacks,deploy,sts,pods,svc,pvc,cm",
        "-A",
        "-o",
        "wide",
    ]);
    kubectl(&["-n", DEMO, "describe", "zerostack", STACK]);
    kubectl(&[
        "-n",
        SYSTEM,
        "logs",
        &format!("deploy/{RELEASE}"),
        "--tail=100",
    ]);
    for d in ["zrocket-source", "zrocket-cache", "zrocket-app"] {
        kubectl(&[
            "-n",
            DEMO,
            "logs",
            &format!("deploy/{d}"),
            "--tail=60",
            "--all-containers",
        ]);
    }
    kubectl(&["get", "events", "-A", "--sort-by=.lastTimestamp"]);
    out
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
