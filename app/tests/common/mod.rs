//! Shared harness for the integration tests: a real MongoDB replica set (from the harness), the
//! real router served in-process on a free 127.0.0.1 port, seeded demo data, and small HTTP
//! helpers.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use zerostack_harness::Mongo;
use zerostack_harness::http::StatusCode;
use zrocket::AppState;
use zrocket::config::{Config, MongoSettings, Secret};
use zrocket::db::Db;

pub const SECRET: &str = "integration-test-secret-0123456789";

pub struct TestApp {
    pub mongo: Mongo,
    pub db: Db,
    pub state: AppState,
    pub base: String,
    pub http: zerostack_harness::http::Client,
    shutdown: Option<oneshot::Sender<()>>,
    _web: tempfile::TempDir,
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(None).await
    }

    pub async fn start_with(api_key: Option<&str>) -> TestApp {
        let mongo = Mongo::start().await.expect("start MongoDB");
        let db = Db::connect(&mongo.uri(), Some("zrocket_test"))
            .await
            .expect("connect");
        let web = tempfile::tempdir().expect("temp dir");
        let config = Config {
            port: 0,
            mongodb: MongoSettings {
                uri: mongo.uri().into(),
                database: Some("zrocket_test".into()),
            },
            auth_secret: SECRET.into(),
            public_zero_url: "http://127.0.0.1:4848".into(),
            zero_api_key: api_key.map(Secret::from),
            web_dir: web.path().to_path_buf(),
            token_ttl_secs: 3600,
        };
        let state = AppState::new(db.clone(), config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            zrocket::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        let http = zerostack_harness::http::Client::new();
        let app = TestApp {
            mongo,
            db,
            state,
            base,
            http,
            shutdown: Some(tx),
            _web: web,
        };
        app.wait_healthy().await;
        zrocket::seed::run(&app.db).await.expect("seed");
        app
    }

    async fn wait_healthy(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/health", self.base)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become healthy");
    }

    /// A valid token for a seeded user, signed with the app's secret.
    pub fn token(&self, user_id: &str) -> String {
        let name = user_id.trim_start_matches("u-");
        self.state.keys.issue(user_id, name, name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; returns status and JSON body (Null when the body is not JSON).
    pub async fn call(
        &self,
        method: zerostack_harness::http::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(zerostack_harness::http::Method::GET, path, token, None)
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(
            zerostack_harness::http::Method::POST,
            path,
            token,
            Some(body),
        )
        .await
    }

    /// POSTs a push to the mutate endpoint as zero-cache does.
    pub async fn push_body(&self, token: &str, body: &Value) -> (StatusCode, Value) {
        self.post(
            "/api/zero/mutate?schema=zero_0&appID=zero",
            Some(token),
            body.clone(),
        )
        .await
    }

    /// Builds a push: mutations are (clientID, id, name, args).
    pub fn push(cg: &str, mutations: &[(&str, i64, &str, Value)]) -> Value {
        json!({
            "clientGroupID": cg,
            "pushVersion": 1,
            "timestamp": 1,
            "requestID": "req",
            "mutations": mutations.iter().map(|(c, id, name, args)| json!({
                "type": "custom", "id": id, "clientID": c, "name": name, "timestamp": 1, "args": [args]
            })).collect::<Vec<_>>(),
        })
    }

    pub async fn query(&self, token: &str, queries: Value) -> (StatusCode, Value) {
        self.post(
            "/api/zero/query?schema=zero_0&appID=zero",
            Some(token),
            json!(["transform", queries]),
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.mongo.stop().await;
    }
}
