//! The README's manifests, rewritten for a test run: images replaced (pure functions over the
//! parsed YAML, so what the user applies and what the test applies differ only there).

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::images::Images;

/// Every document of a multi-document YAML text, as JSON.
pub fn documents(text: &str) -> anyhow::Result<Vec<Value>> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).context("a YAML document"))
        .filter(|d| !matches!(d, Ok(Value::Null)))
        .collect()
}

/// Documents as one YAML stream for `kubectl apply -f -`.
pub fn to_yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).expect("JSON values serialise as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `manifests/dev-databases.yaml` with its images replaced as `images` says. An image to
/// replace that the manifest does not use is an error: the two must not drift apart.
pub fn dev_databases(text: &str, images: &Images) -> anyhow::Result<Vec<Value>> {
    let mut docs = documents(text)?;
    for (from, to) in &images.dev_databases {
        let mut found = false;
        for doc in &mut docs {
            for c in containers(doc) {
                if c["image"] == json!(from) {
                    c["image"] = json!(to);
                    c["imagePullPolicy"] = json!(images.pull_policy);
                    found = true;
                }
            }
        }
        if !found {
            bail!("manifests/dev-databases.yaml uses no image {from}");
        }
    }
    Ok(docs)
}

fn containers(doc: &mut Value) -> Vec<&mut Value> {
    let spec =
        if doc["kind"] == "Job" || doc["kind"] == "StatefulSet" || doc["kind"] == "Deployment" {
            &mut doc["spec"]["template"]["spec"]
        } else {
            return Vec::new();
        };
    let mut out = Vec::new();
    if let Some(list) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        out.extend(list.iter_mut());
    }
    out
}

/// The ZeroStack of `manifests/zerostack.yaml`, running `images`, with the app telling browsers
/// to reach zero-cache at `public_zero_url` (a port-forward in the test).
pub fn zerostack(text: &str, images: &Images, public_zero_url: &str) -> anyhow::Result<Value> {
    let mut zs = documents(text)?
        .into_iter()
        .find(|d| d["kind"] == "ZeroStack")
        .context("manifests/zerostack.yaml has no ZeroStack")?;
    let spec = &mut zs["spec"];
    let set = |component: &mut Value, image: &str| {
        component["image"] = json!(image);
        component["imagePullPolicy"] = json!(images.pull_policy);
    };
    set(&mut spec["source"], &images.source);
    set(&mut spec["app"], &images.app);
    if let Some(cache) = &images.cache {
        set(&mut spec["cache"], cache);
    }
    spec["app"]["publicZeroUrl"] = json!(public_zero_url);
    Ok(zs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DBS: &str = include_str!("../../../manifests/dev-databases.yaml");
    const EXAMPLE: &str = include_str!("../../../manifests/zerostack.yaml");

    #[test]
    fn dev_databases_get_every_local_image_and_nothing_else_changes() {
        let images = Images::local();
        let before = documents(DBS).unwrap();
        let after = dev_databases(DBS, &images).unwrap();
        assert_eq!(before.len(), after.len());
        let text = to_yaml(&after);
        assert!(!text.contains("mongo:8.0.4") && !text.contains("postgres:16.6-alpine"));
        assert!(text.contains("zerostack/dev-mongo:6.0.5"));
        assert!(text.contains("zerostack/dev-postgres:15"));
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(
            changed, 3,
            "the StatefulSet, the rs-init Job and the Deployment"
        );
        assert_eq!(dev_databases(DBS, &Images::kind()).unwrap(), before);
    }

    #[test]
    fn a_replacement_the_manifest_does_not_need_is_an_error() {
        let mut images = Images::local();
        images.dev_databases.push(("redis:7".into(), "x".into()));
        assert!(dev_databases(DBS, &images).is_err());
    }

    #[test]
    fn the_example_stack_runs_our_images() {
        let zs = zerostack(EXAMPLE, &Images::local(), "http://127.0.0.1:1234").unwrap();
        assert_eq!(zs["spec"]["source"]["image"], "zerostack/source-server:e2e");
        assert_eq!(zs["spec"]["cache"]["image"], "zerostack/zero-cache:1.9.0");
        assert_eq!(zs["spec"]["app"]["imagePullPolicy"], "Never");
        assert_eq!(zs["spec"]["app"]["publicZeroUrl"], "http://127.0.0.1:1234");
        let kind = zerostack(EXAMPLE, &Images::kind(), "u").unwrap();
        assert!(kind["spec"]["cache"].get("image").is_none());
        // Everything else is the example as the README gives it.
        let mut original = documents(EXAMPLE)
            .unwrap()
            .into_iter()
            .find(|d| d["kind"] == "ZeroStack")
            .unwrap();
        original["spec"]["source"]["image"] = zs["spec"]["source"]["image"].clone();
        original["spec"]["source"]["imagePullPolicy"] = json!("Never");
        original["spec"]["app"]["image"] = zs["spec"]["app"]["image"].clone();
        original["spec"]["app"]["imagePullPolicy"] = json!("Never");
        original["spec"]["app"]["publicZeroUrl"] = json!("http://127.0.0.1:1234");
        original["spec"]["cache"]["image"] = zs["spec"]["cache"]["image"].clone();
        original["spec"]["cache"]["imagePullPolicy"] = json!("Never");
        assert_eq!(original, zs);
    }
}
