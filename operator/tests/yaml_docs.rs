//! Every YAML document in `charts/` and `manifests/` parses as the Kubernetes type it claims.
//!
//! There is no Helm here, so chart templates are rendered by a deliberately small renderer that
//! understands the constructs this chart uses (`.Values.*` scalars with `quote`/`default`,
//! `toYaml .Values.x | nindent N`, `include` of the name helpers, `if`/`with`/`end` lines, which
//! are evaluated as "enabled" with the representative values below). ZeroStack documents are also
//! checked against the CRD's CEL rules, and the example schema against the spec crate.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parse_as<T: DeserializeOwned>(doc: &Value, origin: &str) {
    if let Err(e) = serde_json::from_value::<T>(doc.clone()) {
        panic!(
            "{origin}: {} does not parse as {}: {e}",
            doc["kind"],
            std::any::type_name::<T>()
        );
    }
}

fn check_doc(doc: &Value, origin: &str) -> String {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, core::v1 as core, rbac::v1 as rbac,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let kind = doc["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("{origin}: document without kind"));
    let api = doc["apiVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("{origin}: {kind} without apiVersion"));
    match (api, kind) {
        ("v1", "Namespace") => parse_as::<core::Namespace>(doc, origin),
        ("v1", "ServiceAccount") => parse_as::<core::ServiceAccount>(doc, origin),
        ("v1", "Service") => parse_as::<core::Service>(doc, origin),
        ("v1", "ConfigMap") => parse_as::<core::ConfigMap>(doc, origin),
        ("v1", "Secret") => parse_as::<core::Secret>(doc, origin),
        ("apps/v1", "Deployment") => parse_as::<apps::Deployment>(doc, origin),
        ("apps/v1", "StatefulSet") => parse_as::<apps::StatefulSet>(doc, origin),
        ("batch/v1", "Job") => parse_as::<batch::Job>(doc, origin),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            parse_as::<rbac::ClusterRole>(doc, origin)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            parse_as::<rbac::ClusterRoleBinding>(doc, origin)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => parse_as::<rbac::Role>(doc, origin),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            parse_as::<rbac::RoleBinding>(doc, origin)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            parse_as::<CustomResourceDefinition>(doc, origin)
        }
        ("zerostack.dev/v1alpha1", "ZeroStack") => {
            let zs: zerostack_operator::crd::ZeroStack = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("{origin}: ZeroStack: {e}"));
            zs.validate_cel()
                .unwrap_or_else(|e| panic!("{origin}: ZeroStack fails CEL: {e:?}"));
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            assert!(
                doc["spec"]["endpoints"].is_array(),
                "{origin}: ServiceMonitor endpoints"
            );
        }
        other => panic!("{origin}: unexpected {other:?}"),
    }
    kind.to_string()
}

fn docs(text: &str, origin: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{origin}: YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).expect("json"))
        .collect()
}

#[test]
fn manifests_parse_as_their_kinds() {
    let dir = root().join("manifests");
    let mut kinds = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for d in docs(&text, &path.display().to_string()) {
                kinds.push(check_doc(&d, &path.display().to_string()));
            }
        }
    }
    for k in ["Deployment", "ZeroStack", "StatefulSet", "ClusterRole"] {
        assert!(kinds.iter().any(|x| x == k), "manifests/ has a {k}");
    }
}

#[test]
fn example_schema_passes_the_spec_crate() {
    let text = std::fs::read_to_string(root().join("manifests/zerostack.yaml")).unwrap();
    let cm = docs(&text, "zerostack.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("schema ConfigMap");
    let data = &cm["data"];
    let files = zerostack_operator::schema_check::SchemaFiles {
        origin: "ConfigMap zerostack-demo/zrocket-schema".into(),
        schema: data["schema.json"].as_str().unwrap().into(),
        table_mappings: data["table-mappings.json"].as_str().map(String::from),
        permissions: data["permissions.json"].as_str().map(String::from),
    };
    zerostack_operator::schema_check::check(&files).unwrap_or_else(|e| panic!("{e}"));
}

/// Representative values: every switch on, so every template is exercised.
const VALUES_OVERRIDE: &str = r#"
leaderElection: {enabled: true}
metrics: {service: {enabled: true, port: 8080}, serviceMonitor: {enabled: true, interval: 30s, labels: {release: prom}}}
nodeSelector: {pool: system}
podAnnotations: {example: "true"}
"#;

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn lookup<'a>(values: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches(".Values.")
        .split('.')
        .fold(values, |v, k| &v[k])
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders one template line, or None to drop it.
fn render_line(line: &str, values: &Value, chart: &Value, with: &mut String) -> Option<String> {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("{{- with ") {
        *with = rest.trim_end_matches("}}").trim().to_string();
        return None;
    }
    if trimmed.starts_with("{{") && trimmed.ends_with("}}") && !trimmed.contains("toYaml") {
        // Control lines (if/with/end/define/comment) and include-only lines (labels helpers).
        if trimmed.contains("include \"zerostack-operator.labels\"")
            || trimmed.contains("selectorLabels")
        {
            let indent = trimmed
                .rsplit("nindent ")
                .next()
                .and_then(|n| n.trim_end_matches(" }}").trim().parse::<usize>().ok())?;
            return Some(format!(
                "{}app.kubernetes.io/name: zerostack-operator",
                " ".repeat(indent)
            ));
        }
        return None;
    }
    if let Some(start) = line.find("{{- toYaml").or_else(|| line.find("{{ toYaml")) {
        let expr = &line[start..];
        let path = expr
            .split_whitespace()
            .find(|w| w.starts_with(".Values.") || *w == ".")?;
        let indent: usize = expr
            .rsplit("nindent ")
            .next()?
            .trim_end_matches("}}")
            .trim()
            .parse()
            .ok()?;
        let v = lookup(values, if path == "." { with.as_str() } else { path }).clone();
        let yaml = serde_yaml::to_string(&v).unwrap();
        let body: String = yaml
            .lines()
            .map(|l| format!("\n{}{l}", " ".repeat(indent)))
            .collect();
        return Some(format!("{}{}", &line[..start], body));
    }
    let mut out = String::new();
    let mut rest = line;
    while let Some(s) = rest.find("{{") {
        out.push_str(&rest[..s]);
        let e = rest[s..].find("}}").expect("closed expression") + s;
        let expr = rest[s + 2..e].trim().trim_start_matches('-').trim();
        let parts: Vec<&str> = expr.split('|').map(str::trim).collect();
        let mut val = if parts[0].starts_with(".Values.") {
            scalar(lookup(values, parts[0]))
        } else if parts[0].starts_with(".Chart.") {
            scalar(&chart[parts[0].trim_start_matches(".Chart.")])
        } else if parts[0] == ".Release.Namespace" {
            "zerostack-system".into()
        } else if parts[0].starts_with("include") {
            "zerostack-operator".into()
        } else {
            panic!("template expression not understood: {expr}")
        };
        for f in &parts[1..] {
            if *f == "quote" {
                val = format!("{val:?}");
            } else if let Some(d) = f.strip_prefix("default ")
                && (val.is_empty() || val == "null")
            {
                val = scalar(&chart[d.trim().trim_start_matches(".Chart.")]);
            }
        }
        out.push_str(&val);
        rest = &rest[e + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[test]
fn chart_templates_render_and_parse_as_their_kinds() {
    let chart_dir = root().join("charts/zerostack-operator");
    let chart = serde_json::to_value(
        serde_yaml::from_str::<serde_yaml::Value>(
            &std::fs::read_to_string(chart_dir.join("Chart.yaml")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let chart = {
        let mut c = serde_json::Map::new();
        for (k, v) in chart.as_object().unwrap() {
            let mut cs = k.chars();
            let cap = cs.next().unwrap().to_uppercase().collect::<String>() + cs.as_str();
            c.insert(cap, v.clone());
        }
        Value::Object(c)
    };
    let mut values = serde_json::to_value(
        serde_yaml::from_str::<serde_yaml::Value>(
            &std::fs::read_to_string(chart_dir.join("values.yaml")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    merge(
        &mut values,
        &serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(VALUES_OVERRIDE).unwrap())
            .unwrap(),
    );

    let mut kinds = vec![];
    for entry in std::fs::read_dir(chart_dir.join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".yaml") || name == "crds.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut with = String::new();
        let rendered: String = text
            .lines()
            .filter_map(|l| render_line(l, &values, &chart, &mut with))
            .map(|l| l + "\n")
            .collect();
        for d in docs(&rendered, &name) {
            kinds.push(check_doc(&d, &format!("{name} (rendered):\n{rendered}")));
        }
    }
    for k in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "Service",
        "ServiceMonitor",
    ] {
        assert!(
            kinds.iter().any(|x| x == k),
            "chart renders a {k}: {kinds:?}"
        );
    }
    // The CRD template ships files/, which must be the generated CRD (checked in tests/crd.rs)
    // and must be kept on uninstall.
    let crds = std::fs::read_to_string(chart_dir.join("templates/crds.yaml")).unwrap();
    assert!(crds.contains("helm.sh/resource-policy") && crds.contains("keep"));
    let crd_file =
        std::fs::read_to_string(chart_dir.join("files/zerostack.dev_zerostacks.yaml")).unwrap();
    for d in docs(&crd_file, "files/zerostack.dev_zerostacks.yaml") {
        check_doc(&d, "files/zerostack.dev_zerostacks.yaml");
    }
}

#[test]
fn golden_files_parse_as_their_kinds() {
    let dir = root().join("operator/tests/golden");
    for entry in std::fs::read_dir(Path::new(&dir)).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for d in docs(&text, &path.display().to_string()) {
            use k8s_openapi::api::{core::v1 as core, networking::v1 as net, policy::v1 as policy};
            match d["kind"].as_str().unwrap() {
                "PersistentVolumeClaim" => parse_as::<core::PersistentVolumeClaim>(&d, "golden"),
                "PodDisruptionBudget" => parse_as::<policy::PodDisruptionBudget>(&d, "golden"),
                "NetworkPolicy" => parse_as::<net::NetworkPolicy>(&d, "golden"),
                _ => {
                    check_doc(&d, &path.display().to_string());
                }
            }
        }
    }
}
