//! The shared configuration objects: the schema ConfigMap the change source mounts, and the
//! Secret with the values the operator generates when the user gives none.
//!
//! The schema ConfigMap is content-addressed and immutable: its name carries the configuration
//! hash, so a new schema is a new object and the change-source pods roll onto it, while the one
//! they run stays untouched until it is pruned. The operator never renders into the user's own
//! ConfigMap (`spec.schema.configMapRef`), which it only reads; and reverting to an earlier
//! schema finds its ConfigMap still there.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{GeneratedSecrets, KEY_ADMIN_PASSWORD, KEY_SOURCE_TOKEN, child_name, component, meta};
use crate::crd::ZeroStack;
use crate::schema_check::RenderedSchema;

/// Prefix of the schema ConfigMaps the operator renders for a stack.
pub fn schema_config_map_prefix(zs: &ZeroStack) -> String {
    child_name(zs, "schema-")
}

/// Name of the schema ConfigMap rendered for the configuration with this hash.
pub fn schema_config_map_name(zs: &ZeroStack, hash: &str) -> String {
    format!("{}{hash}", schema_config_map_prefix(zs))
}

/// Name of the generated Secret.
pub fn generated_secret_name(zs: &ZeroStack) -> String {
    child_name(zs, "generated")
}

/// The validated schema files, mounted by the change source. Immutable: a changed schema is a
/// new ConfigMap (and kubelets need not watch this one).
pub fn schema_config_map(zs: &ZeroStack, schema: &RenderedSchema) -> ConfigMap {
    let mut m = meta(
        zs,
        schema_config_map_name(zs, &schema.hash),
        component::CONFIG,
    );
    m.annotations = Some(BTreeMap::from([(
        super::SCHEMA_HASH_ANNOTATION.to_string(),
        schema.hash.clone(),
    )]));
    ConfigMap {
        metadata: m,
        data: Some(schema.data.clone()),
        immutable: Some(true),
        ..Default::default()
    }
}

/// The generated values. Applied every time with the same values, so it never changes once made.
pub fn generated_secret(zs: &ZeroStack, g: &GeneratedSecrets) -> Secret {
    Secret {
        metadata: meta(zs, generated_secret_name(zs), component::CONFIG),
        type_: Some("Opaque".into()),
        // `data`, not `stringData`: stringData is write-only and would never match on read.
        data: Some(BTreeMap::from([
            (
                KEY_SOURCE_TOKEN.to_string(),
                ByteString(g.source_token.expose().as_bytes().to_vec()),
            ),
            (
                KEY_ADMIN_PASSWORD.to_string(),
                ByteString(g.admin_password.expose().as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}
