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
use zrocket::auth::password::Cost;
use zrocket::auth::session::Kind;
use zrocket::config::{Config, LoginLimits, MongoSettings, Secret};
use zrocket::db::Db;

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
        TestApp::start_configured(|c| c.zero_api_key = api_key.map(Secret::from)).await
    }

    /// The settings every test starts from: sign-in modes off, cheap password hashes (the
    /// tuned cost is a unit test's business, not every sign-up's), the default limits.
    pub fn base_config(mongo: &Mongo, web: &std::path::Path) -> Config {
        Config {
            port: 0,
            mongodb: MongoSettings {
                uri: mongo.uri().into(),
                database: Some("zrocket_test".into()),
            },
            public_zero_url: "http://127.0.0.1:4848".into(),
            zero_api_key: None,
            web_dir: web.to_path_buf(),
            session_ttl_secs: 3600,
            dev_login: false,
            oidc: None,
            cookie_secure: false,
            cookie_domain: None,
            trust_proxy: false,
            login_limits: LoginLimits::default(),
            password_cost: Cost::TESTS_ONLY,
        }
    }

    /// Starts the app with `base_config` changed by `change`.
    pub async fn start_configured(change: impl FnOnce(&mut Config)) -> TestApp {
        let mongo = Mongo::start().await.expect("start MongoDB");
        let db = Db::connect(&mongo.uri(), Some("zrocket_test"))
            .await
            .expect("connect");
        let web = tempfile::tempdir().expect("temp dir");
        let mut config = TestApp::base_config(&mongo, web.path());
        change(&mut config);
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

    /// A session token for a seeded user (seeded users have no password), made in the
    /// session store the app reads.
    pub async fn token(&self, user_id: &str) -> String {
        self.state
            .sessions
            .create(user_id, Kind::Api)
            .await
            .expect("create a session")
            .expose()
            .to_string()
    }

    /// Signs a new user up over HTTP; returns status, body and the `name=value` of the
    /// session cookie (empty when none was set).
    pub async fn signup(
        &self,
        username: &str,
        name: &str,
        password: &str,
    ) -> (StatusCode, Value, String) {
        self.post_for_cookie(
            "/api/auth/signup",
            json!({"username": username, "name": name, "password": password}),
        )
        .await
    }

    /// Signs in over HTTP; like [`TestApp::signup`].
    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value, String) {
        self.post_for_cookie(
            "/api/auth/login",
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// POSTs JSON; returns status, body and the session cookie pair from `Set-Cookie`.
    pub async fn post_for_cookie(&self, path: &str, body: Value) -> (StatusCode, Value, String) {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .to_string();
        let text = resp.text();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            cookie,
        )
    }

    /// A GET with a `Cookie` header.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .header("Cookie", cookie)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let text = resp.text();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
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
