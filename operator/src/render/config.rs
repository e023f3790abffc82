//! The shared configuration objects: the schema ConfigMap the change source mounts, and the
//! Secret with the values the operator generates when the user gives none.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{
    GeneratedSecrets, KEY_ADMIN_PASSWORD, KEY_AUTH_SECRET, KEY_SOURCE_TOKEN, child_name, component,
    meta,
};
use crate::crd::ZeroStack;
use crate::schema_check::RenderedSchema;

/// Name of the schema ConfigMap the operator renders.
pub fn schema_config_map_name(zs: &ZeroStack) -> String {
    child_name(zs, "schema")
}

/// Name of the generated Secret.
pub fn generated_secret_name(zs: &ZeroStack) -> String {
    child_name(zs, "generated")
}

/// The validated schema files, mounted by the change source.
pub fn schema_config_map(zs: &ZeroStack, schema: &RenderedSchema) -> ConfigMap {
    let mut m = meta(zs, schema_config_map_name(zs), component::CONFIG);
    m.annotations = Some(BTreeMap::from([(
        super::SCHEMA_HASH_ANNOTATION.to_string(),
        schema.hash.clone(),
    )]));
    ConfigMap {
        metadata: m,
        data: Some(schema.data.clone()),
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
                ByteString(g.source_token.clone().into_bytes()),
            ),
            (
                KEY_ADMIN_PASSWORD.to_string(),
                ByteString(g.admin_password.clone().into_bytes()),
            ),
            (
                KEY_AUTH_SECRET.to_string(),
                ByteString(g.auth_secret.clone().into_bytes()),
            ),
        ])),
        ..Default::default()
    }
}
