//! YAML output that survives the workspace's `serde_json/arbitrary_precision` feature.
//!
//! With that feature, serde_json numbers serialise through serde_yaml as a private
//! `$serde_json::private::Number` map. Everything the operator writes as YAML (the CRD, golden
//! files) goes through a `serde_json::Value` first and is converted here with real YAML numbers.

use serde::Serialize;

/// Converts a JSON value to a YAML value, numbers included.
pub fn json_to_yaml(value: &serde_json::Value) -> serde_yaml::Value {
    use serde_json::Value as J;
    use serde_yaml::Value as Y;
    match value {
        J::Null => Y::Null,
        J::Bool(b) => Y::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Y::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Y::Number(u.into())
            } else {
                Y::Number(n.as_f64().unwrap_or(f64::NAN).into())
            }
        }
        J::String(s) => Y::String(s.clone()),
        J::Array(items) => Y::Sequence(items.iter().map(json_to_yaml).collect()),
        J::Object(map) => Y::Mapping(
            map.iter()
                .map(|(k, v)| (Y::String(k.clone()), json_to_yaml(v)))
                .collect(),
        ),
    }
}

/// Serialises any value as YAML via JSON.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, serde_yaml::Error> {
    let json =
        serde_json::to_value(value).map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
    serde_yaml::to_string(&json_to_yaml(&json))
}

/// Parses YAML into a JSON value (for tests and for reading manifests).
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, serde_yaml::Error> {
    let y: serde_yaml::Value = serde_yaml::from_str(text)?;
    serde_json::to_value(&y).map_err(<serde_yaml::Error as serde::de::Error>::custom)
}
