//! Test fixtures: a mocked Kubernetes API server on kube-rs's tower-test pair.
//!
//! Unlike a strict call-by-call script, this `ApiServerVerifier` serves a tiny in-memory API
//! (GET, LIST with label selectors, server-side-apply PATCH, DELETE, POST), records every
//! request, and can inject failures. Tests then assert on the requests made and on the objects
//! that ended up "in the cluster", which is what the reconciler is responsible for.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use crate::crd::{
    InlineSchema, MongoSpec, PostgresSpec, SchemaSource, SecretKeyRef, ZeroStack, ZeroStackSpec,
};

/// A valid Zero schema (two tables over one collection: a discriminated union).
pub const SCHEMA: &str = r#"{"tables":{"channels":{"name":"channels","columns":{"id":{"type":"string","optional":false,"customType":null},"name":{"type":"string","optional":false,"customType":null}},"primaryKey":["id"]},"chats":{"name":"chats","columns":{"id":{"type":"string","optional":false,"customType":null},"name":{"type":"string","optional":true,"customType":null}},"primaryKey":["id"]}},"relationships":{}}"#;
/// Mappings for [`SCHEMA`].
pub const MAPPINGS: &str = r#"{"channels":{"source":"rooms","filter":{"t":"c"}},"chats":{"source":"rooms","filter":{"t":"d"}}}"#;

/// A ZeroStack with an inline schema, as the API server would return it.
pub fn zerostack(name: &str) -> ZeroStack {
    let mut zs = ZeroStack::new(
        name,
        ZeroStackSpec {
            app_id: "zrocket".into(),
            shard: 0,
            paused: false,
            mongodb: MongoSpec {
                uri_secret_ref: SecretKeyRef {
                    name: "mongodb".into(),
                    key: "uri".into(),
                },
                database: Some("zrocket".into()),
            },
            postgres: PostgresSpec {
                cvr_secret_ref: SecretKeyRef {
                    name: "postgres".into(),
                    key: "cvr-uri".into(),
                },
                change_secret_ref: Some(SecretKeyRef {
                    name: "postgres".into(),
                    key: "change-uri".into(),
                }),
            },
            schema: SchemaSource {
                inline: Some(InlineSchema {
                    schema: SCHEMA.into(),
                    table_mappings: Some(MAPPINGS.into()),
                    permissions: None,
                }),
                config_map_ref: None,
            },
            source: Default::default(),
            cache: Default::default(),
            app: Default::default(),
            network_policy: Default::default(),
        },
    );
    zs.metadata.namespace = Some("demo".into());
    zs.metadata.uid = Some("11111111-2222-3333-4444-555555555555".into());
    zs.metadata.generation = Some(1);
    zs.metadata.resource_version = Some("1".into());
    zs
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
}

/// A failure to inject: requests whose method and path (substring) match get this status.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Method,
    pub path_contains: String,
    pub code: u16,
}

/// The fake cluster state, shared between the test and the server task.
#[derive(Default)]
pub struct FakeState {
    /// Objects by item path (`/api/v1/namespaces/demo/configmaps/x`).
    pub objects: BTreeMap<String, Value>,
    pub calls: Vec<Call>,
    pub faults: Vec<Fault>,
    next_uid: u64,
}

/// Handle to the fake API server.
#[derive(Clone, Default)]
pub struct ApiServerVerifier {
    pub state: Arc<Mutex<FakeState>>,
}

impl ApiServerVerifier {
    /// A mocked client and the server serving it (runs until the client is dropped).
    pub fn start() -> (Client, ApiServerVerifier) {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let verifier = ApiServerVerifier::default();
        let state = verifier.state.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Option<Value> = if bytes.is_empty() {
                    None
                } else {
                    serde_json::from_slice(&bytes).ok()
                };
                let (code, resp) = serve(&state, parts.method, parts.uri, body);
                let response = Response::builder()
                    .status(StatusCode::from_u16(code).expect("valid status"))
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&resp).expect("json")))
                    .expect("response");
                send.send_response(response);
            }
        });
        (Client::new(svc, "default"), verifier)
    }

    /// Puts an object into the fake cluster.
    pub fn insert(&self, path: &str, obj: Value) {
        self.state.lock().unwrap().objects.insert(path.into(), obj);
    }
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }
    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().objects.remove(path);
    }
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }
    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }
    pub fn fail(&self, method: Method, path_contains: &str, code: u16) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            path_contains: path_contains.into(),
            code,
        });
    }
    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }
    /// Paths of objects under a collection prefix.
    pub fn names_under(&self, prefix: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .objects
            .keys()
            .filter(|k| k.starts_with(prefix) && !k[prefix.len()..].contains('/'))
            .map(|k| k[prefix.len()..].to_string())
            .collect()
    }
    /// Marks a Deployment as fully rolled out (what the Deployment controller would do).
    pub fn make_ready(&self, ns: &str, name: &str) {
        let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        let mut st = self.state.lock().unwrap();
        if let Some(d) = st.objects.get_mut(&path) {
            let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
            d["status"] = json!({
                "observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
                "updatedReplicas": replicas, "availableReplicas": replicas,
            });
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}),
    )
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
    })
}

fn serve(
    state: &Arc<Mutex<FakeState>>,
    method: Method,
    uri: http::Uri,
    body: Option<Value>,
) -> (u16, Value) {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut st = state.lock().unwrap();
    st.calls.push(Call {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    if let Some(f) = st
        .faults
        .iter()
        .find(|f| f.method == method && path.contains(&f.path_contains))
    {
        return status(f.code, "InternalError", "injected fault");
    }
    // Status subresource.
    if let Some(item) = path.strip_suffix("/status") {
        let Some(obj) = st.objects.get_mut(item) else {
            return status(404, "NotFound", "not found");
        };
        if let Some(s) = body.as_ref().and_then(|b| b.get("status")) {
            obj["status"] = s.clone();
        }
        return (200, obj.clone());
    }
    match method {
        Method::GET => {
            if let Some(obj) = st.objects.get(&path) {
                return (200, obj.clone());
            }
            // A collection: list items directly under it.
            let prefix = format!("{path}/");
            let selector = query_param(&query, "labelSelector").unwrap_or_default();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                .map(|(_, v)| v.clone())
                .filter(|v| labels_match(v, &selector))
                .collect();
            if items.is_empty() && !looks_like_collection(&path) {
                return status(404, "NotFound", "not found");
            }
            (
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
            )
        }
        Method::PATCH => {
            let Some(mut patch) = body else {
                return status(400, "BadRequest", "no body");
            };
            let uid = {
                st.next_uid += 1;
                format!("uid-{}", st.next_uid)
            };
            let existing = st.objects.get(&path).cloned();
            let meta = patch["metadata"]
                .as_object_mut()
                .cloned()
                .unwrap_or_default();
            let mut merged_meta = serde_json::Map::from_iter(meta);
            let prev_generation = existing
                .as_ref()
                .and_then(|e| e["metadata"]["generation"].as_i64())
                .unwrap_or(0);
            let spec_changed = existing
                .as_ref()
                .is_none_or(|e| e.get("spec") != patch.get("spec"));
            merged_meta.insert(
                "uid".into(),
                existing
                    .as_ref()
                    .map(|e| e["metadata"]["uid"].clone())
                    .unwrap_or(Value::String(uid)),
            );
            merged_meta.insert(
                "generation".into(),
                json!(if spec_changed {
                    prev_generation + 1
                } else {
                    prev_generation
                }),
            );
            // Creation times in creation order (one second apart), kept across updates.
            let created = existing
                .as_ref()
                .map(|e| e["metadata"]["creationTimestamp"].clone())
                .unwrap_or_else(|| {
                    let n = st.next_uid;
                    json!(format!(
                        "2026-01-01T{:02}:{:02}:{:02}Z",
                        n / 3600,
                        n / 60 % 60,
                        n % 60
                    ))
                });
            merged_meta.insert("creationTimestamp".into(), created);
            patch["metadata"] = Value::Object(merged_meta);
            if let Some(s) = existing.as_ref().and_then(|e| e.get("status")) {
                patch["status"] = s.clone();
            }
            st.objects.insert(path, patch.clone());
            (if existing.is_some() { 200 } else { 201 }, patch)
        }
        Method::DELETE => match st.objects.remove(&path) {
            Some(_) => (200, status(200, "Success", "deleted").1),
            None => status(404, "NotFound", "not found"),
        },
        Method::POST => (201, body.unwrap_or(Value::Null)),
        Method::PUT => {
            let obj = body.unwrap_or(Value::Null);
            st.objects.insert(path, obj.clone());
            (200, obj)
        }
        _ => status(405, "MethodNotAllowed", "unsupported"),
    }
}

/// Collection paths end in a plural resource: `/api/v1/namespaces/x/configmaps` has an even
/// number of segments after `/api/v1` (namespaces, x, configmaps).
fn looks_like_collection(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let rest = if segs.first() == Some(&"api") {
        &segs[2..]
    } else {
        &segs[3.min(segs.len())..]
    };
    rest.len() % 2 == 1
}
