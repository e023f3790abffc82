//! The Helm chart (charts/zerostack-operator), checked by a real Helm and a real API server:
//! `helm lint --strict` is clean; what it renders with the default values, with every option on
//! (ci/all-options-values.yaml) and with the longest release name passes a server-side dry run;
//! values.schema.json refuses a wrong type naming the value; manifests/operator.yaml is what
//! charts/render-manifests.sh renders; two releases share a cluster without a name in common.
//!
//! The tools and the cluster come from `zerostack_harness::cluster`: without a cluster a test
//! prints one line and passes, unless `ZEROSTACK_CLUSTER_TESTS=1`. Every namespace a test makes
//! is `chart-test-*` and is deleted when the test ends, however it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;
use zerostack_harness::cluster::Cluster;
use zerostack_harness::process::{Output, output};

const ALL_OPTIONS: &str = "ci/all-options-values.yaml";
const SERVICE_MONITOR_CRD: &str = "servicemonitors.monitoring.coreos.com";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    root().join("charts/zerostack-operator")
}

/// Runs `cmd` to its end (see `zerostack_harness::process::output`).
fn exec(cmd: &mut Command, stdin: Option<&str>) -> Output {
    output(cmd, stdin).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `cmd` and returns its stdout; panics with everything it printed when it fails.
fn ok(what: &str, cmd: &mut Command, stdin: Option<&str>) -> Output {
    let out = exec(cmd, stdin);
    assert!(out.success(), "{what} failed:\n{}", out.all());
    out
}

fn helm(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = c.helm();
    cmd.args(args);
    cmd
}

fn kubectl(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = c.kubectl();
    cmd.args(["--request-timeout=60s"]).args(args);
    cmd
}

/// `helm template <release> <chart> -n <namespace> <args>`, its stdout.
fn template(c: &Cluster, release: &str, namespace: &str, args: &[&str]) -> String {
    let chart = chart();
    let mut cmd = helm(
        c,
        &[
            "template",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            namespace,
        ],
    );
    cmd.args(args).current_dir(chart);
    ok(&format!("helm template {release} {args:?}"), &mut cmd, None).stdout
}

/// The objects of a multi-document YAML stream (empty documents left out).
fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("helm printed valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// What makes an object unique in a cluster: API group, kind, namespace ("" when
/// cluster-scoped) and name.
type Key = (String, String, String, String);

fn key(o: &Value) -> Key {
    let api = str_at(o, &["apiVersion"]).expect("apiVersion");
    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
    (
        group.to_owned(),
        str_at(o, &["kind"]).expect("kind").to_owned(),
        str_at(o, &["metadata", "namespace"])
            .unwrap_or("")
            .to_owned(),
        str_at(o, &["metadata", "name"]).expect("name").to_owned(),
    )
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter()
        .filter(|o| str_at(o, &["kind"]) == Some(kind))
        .collect()
}

fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objs, kind);
    assert_eq!(found.len(), 1, "one {kind} expected, got {}", found.len());
    found[0]
}

/// The value of the operator container's environment variable `name`.
fn env_var<'a>(deployment: &'a Value, name: &str) -> Option<&'a str> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))?["value"]
        .as_str()
}

/// A `chart-test-*` namespace, deleted on drop (also when the test panics).
struct TestNamespace {
    cluster: Cluster,
    name: String,
}

impl TestNamespace {
    fn create(cluster: &Cluster, purpose: &str) -> TestNamespace {
        // The pid keeps two runs of the suite (two engineers, one cluster) apart.
        let name = format!("chart-test-{purpose}-{}", std::process::id());
        ok(
            "kubectl create namespace",
            &mut kubectl(cluster, &["create", "namespace", &name]),
            None,
        );
        TestNamespace {
            cluster: cluster.clone(),
            name,
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let out = exec(
            &mut kubectl(
                &self.cluster,
                &[
                    "delete",
                    "namespace",
                    &self.name,
                    "--ignore-not-found",
                    "--wait=false",
                ],
            ),
            None,
        );
        if !out.success() {
            eprintln!("deleting namespace {}: {}", self.name, out.all());
        }
    }
}

/// The ServiceMonitor CRD the all-options dry run needs: the cluster's own when it has one (a
/// real Prometheus Operator, left untouched), else the stub from tests/fixtures, deleted on drop.
struct ServiceMonitorCrd {
    cluster: Cluster,
    created: bool,
}

impl ServiceMonitorCrd {
    fn ensure(cluster: &Cluster) -> ServiceMonitorCrd {
        let crd = format!("crd/{SERVICE_MONITOR_CRD}");
        let exists = exec(&mut kubectl(cluster, &["get", &crd, "-o", "name"]), None).success();
        if !exists {
            let stub = root().join("operator/tests/fixtures/servicemonitor-crd-stub.yaml");
            ok(
                "kubectl create the ServiceMonitor CRD stub",
                &mut kubectl(cluster, &["create", "-f", stub.to_str().unwrap()]),
                None,
            );
        }
        let guard = ServiceMonitorCrd {
            cluster: cluster.clone(),
            created: !exists,
        };
        ok(
            "waiting for the ServiceMonitor CRD",
            &mut kubectl(
                cluster,
                &["wait", "--for=condition=Established", &crd, "--timeout=60s"],
            ),
            None,
        );
        guard
    }
}

impl Drop for ServiceMonitorCrd {
    fn drop(&mut self) {
        if self.created {
            let crd = format!("crd/{SERVICE_MONITOR_CRD}");
            let out = exec(
                // Waits until it is gone, so that a run right after this one does not find a
                // terminating CRD and take it for the cluster's own.
                &mut kubectl(
                    &self.cluster,
                    &["delete", &crd, "--ignore-not-found", "--timeout=60s"],
                ),
                None,
            );
            if !out.success() {
                eprintln!("deleting the ServiceMonitor CRD stub: {}", out.all());
            }
        }
    }
}

#[test]
fn lint_is_clean_with_default_and_all_options_values() {
    let Some(c) = Cluster::get("lint_is_clean_with_default_and_all_options_values") else {
        return;
    };
    let chart = chart();
    for values in [None, Some(ALL_OPTIONS)] {
        let mut cmd = helm(&c, &["lint", "--strict", chart.to_str().unwrap()]);
        if let Some(v) = values {
            cmd.args(["--values", v]).current_dir(&chart);
        }
        let out = ok(&format!("helm lint --strict ({values:?})"), &mut cmd, None);
        // [INFO] lines (an icon is recommended) are advice; warnings and errors are not.
        for bad in ["[WARNING]", "[ERROR]"] {
            assert!(
                !out.all().contains(bad),
                "helm lint ({values:?}) printed {bad}:\n{}",
                out.all()
            );
        }
    }
}

#[test]
fn rendered_chart_passes_a_server_side_dry_run() {
    let Some(c) = Cluster::get("rendered_chart_passes_a_server_side_dry_run") else {
        return;
    };
    let ns = TestNamespace::create(&c, "dry-run");
    let _service_monitor = ServiceMonitorCrd::ensure(&c);
    // Helm allows 53 characters; every name derived from it must still be valid.
    let longest = "chart-test-a-release-name-of-fifty-three-characters-x";
    assert_eq!(longest.len(), 53);
    // The namespaced Role must land in a namespace that exists: the test's own.
    let watch = format!("watchNamespace={}", ns.name);
    let cases: [(&str, &str, &[&str]); 3] = [
        ("default values", "zerostack-operator", &[]),
        (
            "every option on",
            "chart-test-all",
            &["--values", ALL_OPTIONS, "--set", &watch],
        ),
        (
            "the longest release name",
            longest,
            &["--set", "leaderElection.enabled=true"],
        ),
    ];
    for (what, release, args) in cases {
        let rendered = template(&c, release, &ns.name, args);
        let objs = objects(&rendered);
        // Server-side apply: it validates every field strictly (a misspelt field is an error,
        // not a warning) and, unlike client-side apply, does not warn about objects (the shared
        // ZeroStack CRD) that other tools created. --force-conflicts: nothing is written.
        let out = ok(
            &format!("server-side dry run of {what}"),
            &mut kubectl(
                &c,
                &[
                    "apply",
                    "--dry-run=server",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager=chart-test",
                    "-f",
                    "-",
                ],
            ),
            Some(&rendered),
        );
        assert!(
            !out.stderr.contains("Warning"),
            "dry run of {what} warned:\n{}",
            out.stderr
        );
        let accepted = out.stdout.matches("(server dry run)").count();
        assert_eq!(
            accepted,
            objs.len(),
            "dry run of {what}: {accepted} of {} objects accepted:\n{}",
            objs.len(),
            out.all()
        );
        if what == "every option on" {
            for kind in [
                "CustomResourceDefinition",
                "ServiceAccount",
                "Service",
                "Deployment",
                "ServiceMonitor",
            ] {
                one(&objs, kind);
            }
            // watchNamespace: the operator's Role there and the Lease's Role, nothing cluster-wide.
            assert_eq!(of_kind(&objs, "Role").len(), 2);
            assert_eq!(of_kind(&objs, "RoleBinding").len(), 2);
            assert!(of_kind(&objs, "ClusterRole").is_empty());
            assert!(of_kind(&objs, "ClusterRoleBinding").is_empty());
        }
    }
}

#[test]
fn wrong_value_types_are_refused_naming_the_value() {
    let Some(c) = Cluster::get("wrong_value_types_are_refused_naming_the_value") else {
        return;
    };
    // (--set, what the error must say, the same key set right: must render).
    let cases = [
        (
            "replicaCount=abc",
            &["'/replicaCount'", "want integer"][..],
            "replicaCount=0",
        ),
        (
            "leaderElection.enabled=maybe",
            &["'/leaderElection/enabled'", "want boolean"],
            "leaderElection.enabled=true",
        ),
        (
            "metrics.service.port=http",
            &["'/metrics/service/port'", "want integer"],
            "metrics.service.port=9090",
        ),
        (
            "podAnnotations.example\\.com/scrape=true",
            &["'/podAnnotations/example.com~1scrape'", "want string"],
            "podAnnotations.example\\.com/scrape=yes",
        ),
        (
            "image.pullPolicy=Sometimes",
            &["'/image/pullPolicy'", "must be one of"],
            "image.pullPolicy=Never",
        ),
        // A misspelt key is refused, not ignored.
        (
            "leaderElection.enable=true",
            &["'/leaderElection'", "'enable' not allowed"],
            "leaderElection.enabled=false",
        ),
        (
            "replicaCont=2",
            &["additional properties 'replicaCont' not allowed"],
            "replicaCount=1",
        ),
        // Checks of the templates rather than of the schema.
        (
            "replicaCount=2",
            &["replicaCount > 1 needs leaderElection.enabled=true"],
            "replicaCount=1",
        ),
    ];
    let chart = chart();
    for (wrong, says, right) in cases {
        let out = exec(
            &mut helm(
                &c,
                &["template", "x", chart.to_str().unwrap(), "--set", wrong],
            ),
            None,
        );
        assert!(
            !out.success(),
            "helm accepted --set {wrong} ({} bytes rendered)",
            out.stdout.len()
        );
        for s in says {
            assert!(
                out.stderr.contains(s),
                "--set {wrong}: the error does not say {s:?}:\n{}",
                out.stderr
            );
        }
        ok(
            &format!("helm template --set {right}"),
            &mut helm(
                &c,
                &["template", "x", chart.to_str().unwrap(), "--set", right],
            ),
            None,
        );
    }
}

#[test]
fn manifests_operator_yaml_is_the_rendered_chart() {
    let Some(c) = Cluster::get("manifests_operator_yaml_is_the_rendered_chart") else {
        return;
    };
    let script = root().join("charts/render-manifests.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .arg("--stdout")
        .env("HELM", c.helm().get_program());
    let want = ok("charts/render-manifests.sh --stdout", &mut cmd, None).stdout;
    let path = root().join("manifests/operator.yaml");
    let have = std::fs::read_to_string(&path).expect("manifests/operator.yaml");
    if have != want {
        let (line, (h, w)) = have
            .lines()
            .chain(std::iter::repeat("<end of file>"))
            .zip(want.lines().chain(std::iter::repeat("<end of file>")))
            .enumerate()
            .find(|(_, (h, w))| h != w)
            .unwrap_or((0, ("", "")));
        panic!(
            "manifests/operator.yaml is stale: run charts/render-manifests.sh \
             (first difference, line {}: have {h:?}, the chart renders {w:?})",
            line + 1
        );
    }
    assert!(have.starts_with("# Generated by charts/render-manifests.sh"));
    let objs = objects(&have);
    // Users apply the CRD from crds/ first; a copy here would be one more to keep in sync.
    assert!(of_kind(&objs, "CustomResourceDefinition").is_empty());
    assert_eq!(
        str_at(one(&objs, "Namespace"), &["metadata", "name"]),
        Some("zerostack-system")
    );
    assert_eq!(
        str_at(one(&objs, "Deployment"), &["metadata", "name"]),
        Some("zerostack-operator")
    );
}

/// With `watchNamespace`, the operator's rights are a Role and RoleBinding in that namespace and
/// nothing cluster-wide grants Secrets or ConfigMaps; without it, a ClusterRole does (the
/// operator then watches every namespace). The Deployment is told the same namespace.
#[test]
fn a_namespaced_release_grants_only_a_role_in_that_namespace() {
    let Some(c) = Cluster::get("a_namespaced_release_grants_only_a_role_in_that_namespace") else {
        return;
    };
    let grants = |rule: &Value, resource: &str| {
        rule["resources"]
            .as_sequence()
            .is_some_and(|r| r.iter().any(|r| r.as_str() == Some(resource)))
    };
    let sensitive = |o: &Value| {
        o["rules"].as_sequence().is_some_and(|rules| {
            rules
                .iter()
                .any(|r| grants(r, "secrets") || grants(r, "configmaps"))
        })
    };
    for leader in ["false", "true"] {
        let objs = objects(&template(
            &c,
            "zs",
            "zerostack-system",
            &[
                "--set",
                &format!("watchNamespace=team-a,leaderElection.enabled={leader}"),
            ],
        ));
        let cluster_wide: Vec<Key> = objs
            .iter()
            .filter(|o| {
                matches!(
                    str_at(o, &["kind"]),
                    Some("ClusterRole" | "ClusterRoleBinding")
                )
            })
            .map(key)
            .collect();
        assert!(cluster_wide.is_empty(), "leader={leader}: {cluster_wide:?}");
        let roles: Vec<&Value> = of_kind(&objs, "Role")
            .into_iter()
            .filter(|r| sensitive(r))
            .collect();
        assert_eq!(roles.len(), 1, "leader={leader}: one Role grants Secrets");
        assert_eq!(str_at(roles[0], &["metadata", "namespace"]), Some("team-a"));
        let binding = of_kind(&objs, "RoleBinding")
            .into_iter()
            .find(|b| str_at(b, &["roleRef", "name"]) == str_at(roles[0], &["metadata", "name"]))
            .expect("a RoleBinding for the Role");
        assert_eq!(str_at(binding, &["metadata", "namespace"]), Some("team-a"));
        assert_eq!(str_at(binding, &["roleRef", "kind"]), Some("Role"));
        assert_eq!(
            str_at(&binding["subjects"][0], &["namespace"]),
            Some("zerostack-system"),
            "bound to the ServiceAccount in the release's namespace"
        );
        assert_eq!(
            env_var(one(&objs, "Deployment"), "WATCH_NAMESPACE"),
            Some("team-a")
        );
    }
    // Cluster-wide: the ClusterRole grants them, and no Role does.
    let objs = objects(&template(&c, "zs", "zerostack-system", &[]));
    assert!(sensitive(one(&objs, "ClusterRole")));
    assert_eq!(
        str_at(one(&objs, "ClusterRoleBinding"), &["roleRef", "kind"]),
        Some("ClusterRole")
    );
    assert!(of_kind(&objs, "Role").is_empty());
}

/// The standard fullname: `<release>-<chart>`, the release alone when it contains the chart
/// name, and the overrides honoured.
#[test]
fn object_names_carry_the_release() {
    let Some(c) = Cluster::get("object_names_carry_the_release") else {
        return;
    };
    let cases: [(&str, &[&str], &str); 5] = [
        ("zs", &[], "zs-zerostack-operator"),
        ("zerostack-operator", &[], "zerostack-operator"),
        (
            "prod-zerostack-operator-eu",
            &[],
            "prod-zerostack-operator-eu",
        ),
        ("zs", &["--set", "nameOverride=zso"], "zs-zso"),
        ("zs", &["--set", "fullnameOverride=ops"], "ops"),
    ];
    for (release, args, fullname) in cases {
        let args = [args, &["--set", "leaderElection.enabled=true"]].concat();
        let objs = objects(&template(&c, release, "chart-test-names", &args));
        for o in &objs {
            let (_, kind, _, name) = key(o);
            let want = match kind.as_str() {
                "CustomResourceDefinition" => "zerostacks.zerostack.dev".to_owned(),
                "Service" => format!("{fullname}-metrics"),
                "Role" | "RoleBinding" => format!("{fullname}-leader"),
                _ => fullname.to_owned(),
            };
            assert_eq!(name, want, "release {release} {args:?}: the {kind}'s name");
            let labels = &o["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/instance"].as_str(), Some(release));
            assert_eq!(
                labels["app.kubernetes.io/managed-by"].as_str(),
                Some("Helm")
            );
            assert!(
                labels["helm.sh/chart"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("zerostack-operator-")),
                "{kind}: helm.sh/chart label"
            );
        }
        let deployment = one(&objs, "Deployment");
        assert_eq!(
            env_var(deployment, "LEADER_ELECTION_LEASE"),
            Some(fullname),
            "release {release} {args:?}: the Lease the operator elects on"
        );
    }
}

/// Two releases of the chart in one namespace (the worst case), the second with
/// crds.install=false, render no object with the same kind, namespace and name, elect leaders
/// on different Leases and select only their own pods.
#[test]
fn two_releases_render_no_common_names() {
    let Some(c) = Cluster::get("two_releases_render_no_common_names") else {
        return;
    };
    let ns = "chart-test-shared";
    // Every optional object on, so that every kind the chart can make is compared.
    let on = [
        "--set",
        "replicaCount=2,leaderElection.enabled=true,metrics.serviceMonitor.enabled=true",
    ];
    let first = objects(&template(&c, "zs-a", ns, &on));
    let second = objects(&template(
        &c,
        "zs-b",
        ns,
        &[&on[..], &["--set", "crds.install=false"]].concat(),
    ));
    let kinds = |objs: &[Value]| -> BTreeSet<String> { objs.iter().map(|o| key(o).1).collect() };
    let mut want_kinds = kinds(&second);
    assert!(
        want_kinds.len() >= 8,
        "the second release renders only {want_kinds:?}"
    );
    assert!(!want_kinds.contains("CustomResourceDefinition"));
    want_kinds.insert("CustomResourceDefinition".into());
    assert_eq!(
        kinds(&first),
        want_kinds,
        "the first release installs the CRD"
    );

    let names = |objs: &[Value]| -> BTreeSet<Key> { objs.iter().map(key).collect() };
    let common: Vec<Key> = names(&first)
        .intersection(&names(&second))
        .cloned()
        .collect();
    assert!(common.is_empty(), "both releases make {common:#?}");

    let lease = |objs: &[Value]| {
        env_var(one(objs, "Deployment"), "LEADER_ELECTION_LEASE")
            .expect("LEADER_ELECTION_LEASE")
            .to_owned()
    };
    let (lease_a, lease_b) = (lease(&first), lease(&second));
    assert_ne!(lease_a, lease_b, "both releases elect on one Lease");
    for (objs, lease) in [(&first, &lease_a), (&second, &lease_b)] {
        // The Role lets each release read and renew its own Lease only.
        let rules = one(objs, "Role")["rules"].as_sequence().unwrap();
        let named: Vec<&str> = rules
            .iter()
            .filter_map(|r| r["resourceNames"].as_sequence())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(named, [lease.as_str()]);
    }

    // Neither Deployment's selector matches the other's pods.
    let selector = |objs: &[Value]| -> BTreeMap<String, String> {
        serde_yaml::from_value(one(objs, "Deployment")["spec"]["selector"]["matchLabels"].clone())
            .unwrap()
    };
    let pod_labels = |objs: &[Value]| -> BTreeMap<String, String> {
        serde_yaml::from_value(
            one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"].clone(),
        )
        .unwrap()
    };
    let matches = |sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
        sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(matches(&selector(&first), &pod_labels(&first)));
    assert!(!matches(&selector(&first), &pod_labels(&second)));
    assert!(!matches(&selector(&second), &pod_labels(&first)));
    for objs in [&first, &second] {
        let service = one(objs, "Service");
        let monitor = one(objs, "ServiceMonitor");
        let sel: BTreeMap<String, String> =
            serde_yaml::from_value(monitor["spec"]["selector"]["matchLabels"].clone()).unwrap();
        let labels: BTreeMap<String, String> =
            serde_yaml::from_value(service["metadata"]["labels"].clone()).unwrap();
        assert!(
            matches(&sel, &labels),
            "the ServiceMonitor selects its Service"
        );
    }
    let other_service: BTreeMap<String, String> =
        serde_yaml::from_value(one(&second, "Service")["metadata"]["labels"].clone()).unwrap();
    let first_monitor: BTreeMap<String, String> = serde_yaml::from_value(
        one(&first, "ServiceMonitor")["spec"]["selector"]["matchLabels"].clone(),
    )
    .unwrap();
    assert!(!matches(&first_monitor, &other_service));
}

/// Helm itself refuses a release whose objects another release owns. Two real installs into
/// two `chart-test-*` namespaces, with zero replicas (this cluster has no operator image) and
/// crds.install=false for both: the ZeroStack CRD is shared with everyone else using the
/// cluster, and a release that took it over would leave its ownership on it after uninstall.
#[test]
fn two_releases_install_side_by_side() {
    let Some(c) = Cluster::get("two_releases_install_side_by_side") else {
        return;
    };
    let pid = std::process::id();
    let chart = chart();
    let mut releases = vec![];
    for (i, purpose) in ["install-a", "install-b"].into_iter().enumerate() {
        let ns = TestNamespace::create(&c, purpose);
        // Cluster-scoped names carry the release, so the release carries the pid.
        let release = format!("chart-test-{i}-{pid}");
        let installed = Release {
            cluster: c.clone(),
            name: release.clone(),
            namespace: ns.name.clone(),
        };
        let out = ok(
            &format!("helm install {release}"),
            &mut helm(
                &c,
                &[
                    "install",
                    &release,
                    chart.to_str().unwrap(),
                    "--namespace",
                    &ns.name,
                    "--set",
                    "replicaCount=0,crds.install=false,leaderElection.enabled=true",
                    "--set",
                    &format!("watchNamespace={}", ns.name),
                    "--wait",
                    "--timeout=2m",
                ],
            ),
            None,
        );
        releases.push((installed, ns, out.stdout));
    }
    for (r, ns, notes) in &releases {
        // The notes tell the user what to do next, for this release.
        for says in [
            format!(
                "kubectl -n {} wait zs/zrocket --for=condition=Ready",
                ns.name
            ),
            "did not install the ZeroStack CRD (crds.install=false)".to_owned(),
            format!("Lease (\"{}-zerostack-operator\")", r.name),
        ] {
            assert!(
                notes.contains(&says),
                "the notes of {} do not say {says:?}:\n{notes}",
                r.name
            );
        }
    }
    for (r, _, _) in &releases {
        let status = ok(
            "helm status",
            &mut helm(&c, &["status", &r.name, "--namespace", &r.namespace]),
            None,
        );
        assert!(
            status.stdout.contains("STATUS: deployed"),
            "{}",
            status.stdout
        );
        // watchNamespace is set, so the grant is a RoleBinding in that namespace.
        let rb = format!("rolebinding/{}-zerostack-operator", r.name);
        ok(
            "kubectl get",
            &mut kubectl(&c, &["get", "-n", &r.namespace, &rb]),
            None,
        );
    }
    // Uninstall before the namespaces go (the releases drop first).
    while let Some((release, ns, _)) = releases.pop() {
        drop(release);
        drop(ns);
    }
}

/// A Helm release, uninstalled on drop.
struct Release {
    cluster: Cluster,
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let out = exec(
            &mut helm(
                &self.cluster,
                &[
                    "uninstall",
                    &self.name,
                    "--namespace",
                    &self.namespace,
                    "--ignore-not-found",
                    "--wait",
                    "--timeout=2m",
                ],
            ),
            None,
        );
        if !out.success() {
            eprintln!("helm uninstall {}: {}", self.name, out.all());
        }
    }
}
