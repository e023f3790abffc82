//! Loads the schema, table mappings and permissions from files, URLs or inline values, validates
//! them with the shared spec crate, and compiles every table once.
//!
//! Nothing streams with a half-understood schema: any problem stops start-up with a message that
//! names the input, the JSON path and the problem.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use zerostack_spec::{Bookkeeping, Config, Source};

use crate::config::settings::{Input, Settings};
use crate::pipeline::CompiledPipeline;
use crate::rows::{CompiledTable, RowsError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{origin}: cannot read it: {message}")]
    Read { origin: String, message: String },
    #[error("invalid schema or mappings:\n{0}")]
    Spec(String),
    #[error("{0}")]
    Compile(String),
}

pub struct Loaded {
    pub config: Config,
    pub tables: Vec<Arc<CompiledTable>>,
    /// The tables with a pipeline mapping (by Zero table name), compiled.
    pub pipelines: HashMap<String, Arc<CompiledPipeline>>,
}

/// A URL as it may appear in messages: no user info, no query string (either may hold a secret).
pub fn display_url(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(u) if u.scheme().is_some() && u.host().is_some() => {
            let port = u.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                u.scheme_str().unwrap_or_default(),
                u.host().unwrap_or_default(),
                u.path()
            )
        }
        _ => "<unparsable URL>".into(),
    }
}

/// How many redirects a URL input may take (GitHub raw links and object stores redirect).
const MAX_REDIRECTS: usize = 5;
/// How long fetching one URL input may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET url` over HTTP or HTTPS (webpki roots), following redirects; the body as text. Errors
/// never carry the URL, which may hold a token: the caller names the input.
async fn get_text(url: &str) -> Result<String, String> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_string())?;
    for _ in 0..=MAX_REDIRECTS {
        let req = http::Request::get(uri.clone())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| format!("HTTP {status} without a Location"))?;
            uri = follow(&uri, location).ok_or("a redirect to an invalid URL")?;
            continue;
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        return String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".into());
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// The target of a redirect: an absolute `Location`, or a path on the same server.
fn follow(from: &http::Uri, location: &str) -> Option<http::Uri> {
    let to: http::Uri = location.parse().ok()?;
    if to.scheme().is_some() {
        return Some(to);
    }
    let mut parts = from.clone().into_parts();
    parts.path_and_query = to.path_and_query().cloned();
    http::Uri::from_parts(parts).ok()
}

async fn fetch(input: &Input, what: &str) -> Result<(String, String), LoadError> {
    match input {
        Input::Inline(v) => Ok((format!("inline {what}"), v.to_string())),
        Input::File(path) => {
            let origin = path.display().to_string();
            tokio::fs::read_to_string(path)
                .await
                .map(|t| (origin.clone(), t))
                .map_err(|e| LoadError::Read {
                    origin,
                    message: e.to_string(),
                })
        }
        Input::Url(url) => {
            let url = url.as_str();
            let origin = display_url(url);
            let text = match tokio::time::timeout(FETCH_TIMEOUT, get_text(url)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
            };
            text.map(|t| (origin.clone(), t))
                .map_err(|message| LoadError::Read { origin, message })
        }
    }
}

fn as_source((origin, text): &(String, String)) -> Source<'_> {
    Source { origin, text }
}

pub async fn load(settings: &Settings) -> Result<Loaded, LoadError> {
    let (schema_origin, schema_text) = fetch(&settings.schema, "schema").await?;
    let mappings = match &settings.table_mappings {
        Some(i) => Some(fetch(i, "table mappings").await?),
        None => None,
    };
    let permissions = match &settings.permissions {
        Some(i) => Some(fetch(i, "permissions").await?),
        None => None,
    };
    let config = zerostack_spec::load(
        Source {
            origin: &schema_origin,
            text: &schema_text,
        },
        mappings.as_ref().map(as_source),
        permissions.as_ref().map(as_source),
    )
    .map_err(|e| LoadError::Spec(e.to_string()))?
    .with_bookkeeping(Bookkeeping {
        clients_collection: settings.clients_collection.clone(),
        mutations_collection: settings.mutations_collection.clone(),
    });
    compile(config)
}

/// Compiles a checked configuration's tables and pipelines (also used for the configuration a
/// replica was built from, when a schema change is applied in place).
pub fn compile(config: Config) -> Result<Loaded, LoadError> {
    let mut tables = Vec::with_capacity(config.tables.len());
    let mut pipelines = HashMap::new();
    for t in &config.tables {
        let compile = |e: RowsError| LoadError::Compile(e.to_string());
        let mut table = CompiledTable::compile(t).map_err(compile)?;
        if let Some(p) = config.pipeline(&t.name) {
            let compiled = CompiledPipeline::compile(t, p).map_err(compile)?;
            // The pipeline's rule decides which tables need pre-images (`mongo::images`).
            table = table.for_pipeline(!compiled.needs_pre_images());
            pipelines.insert(t.name.clone(), Arc::new(compiled));
        }
        tables.push(Arc::new(table));
    }
    Ok(Loaded {
        config,
        tables,
        pipelines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_lose_their_secrets() {
        assert_eq!(
            display_url("https://user:pw@host.example/schema.json?token=abc"),
            "https://host.example/schema.json"
        );
        assert_eq!(
            display_url("http://127.0.0.1:8011/api/schema/export"),
            "http://127.0.0.1:8011/api/schema/export"
        );
        assert_eq!(display_url("not a url"), "<unparsable URL>");
    }

    #[test]
    fn redirects_resolve_against_the_server_they_came_from() {
        let from: http::Uri = "https://a.example:8443/x/schema.json?t=1".parse().unwrap();
        assert_eq!(
            follow(&from, "/y/schema.json").unwrap().to_string(),
            "https://a.example:8443/y/schema.json"
        );
        assert_eq!(
            follow(&from, "https://b.example/z").unwrap().to_string(),
            "https://b.example/z"
        );
    }
}
