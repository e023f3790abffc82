//! Loads the schema, table mappings and permissions from files, URLs or inline values, validates
//! them with the shared spec crate, and compiles every table once.
//!
//! Nothing streams with a half-understood schema: any problem stops start-up with a message that
//! names the input, the JSON path and the problem.

use std::sync::Arc;
use std::time::Duration;

use zerostack_spec::{Config, Source};

use crate::config::{Input, Settings};
use crate::rows::CompiledTable;

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
}

/// A URL as it may appear in messages: no user info, no query string (either may hold a secret).
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<unparsable URL>".into(),
    }
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
            let origin = display_url(url);
            let read_err = |message: String| LoadError::Read {
                origin: origin.clone(),
                message,
            };
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| read_err(e.to_string()))?;
            let resp = client
                .get(url)
                .send()
                .await
                .map_err(|e| read_err(e.without_url().to_string()))?;
            if !resp.status().is_success() {
                return Err(read_err(format!("HTTP {}", resp.status())));
            }
            let text = resp
                .text()
                .await
                .map_err(|e| read_err(e.without_url().to_string()))?;
            Ok((origin, text))
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
    .map_err(|e| LoadError::Spec(e.to_string()))?;
    let tables = config
        .tables
        .iter()
        .map(|t| CompiledTable::compile(t).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Compile(e.to_string()))?;
    Ok(Loaded { config, tables })
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
        assert_eq!(display_url("not a url"), "<unparsable URL>");
    }
}
