//! Every YAML document in `manifests/`, the chart's CRD file and the golden files parses as the
//! Kubernetes type it claims; ZeroStack documents are also checked against the CRD's CEL rules,
//! and the example schema against the spec crate. The chart's templates are rendered by a real
//! Helm and checked by a real API server in `helm_chart.rs`.

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
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            parse_as::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(doc, origin)
        }
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

#[test]
fn the_charts_crd_file_parses_as_a_crd() {
    let path = "charts/zerostack-operator/files/zerostack.dev_zerostacks.yaml";
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    for d in docs(&text, path) {
        assert_eq!(check_doc(&d, path), "CustomResourceDefinition");
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
