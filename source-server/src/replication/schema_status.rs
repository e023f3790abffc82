//! The last schema change this source handled, for `/metadata/status` (`lastSchemaChange`):
//! whether it was applied in place (and how far) or made zero-cache resync, and why.
//!
//! Kept per process, beside the connections' views, so an operator can tell after a rollout
//! which kind of change it was without reading logs.

use std::sync::Mutex;

use serde::Serialize;

use crate::connection_status::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    InPlace,
    Reset,
    /// Not applied: the replica's configuration is newer than this source's and another source
    /// still runs it (a rolling update); the connection was closed so zero-cache resumes there.
    Refused,
}

/// How far an in-place change got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeState {
    /// Streaming the changes before the change point, or the change's own transaction.
    Applying,
    /// Its transaction is sent; zero-cache has not acknowledged it yet.
    Sent,
    /// zero-cache acknowledged it: the replica's configuration is now the loaded one.
    Committed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastSchemaChange {
    pub kind: ChangeKind,
    #[serde(rename = "appID")]
    pub app_id: String,
    pub shard_num: u32,
    pub replica_version: String,
    pub from_config_hash: Option<String>,
    pub to_config_hash: String,
    /// In place: each step, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
    /// Reset: why it could not be applied in place. Refused: why it was not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// In place: the watermark of its transaction, once chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ChangeState>,
    /// In place: rows written by its transaction so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// When it was decided (epoch ms).
    pub at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_at_ms: Option<u64>,
}

#[derive(Debug, Default)]
pub struct SchemaChangeStatus(Mutex<Option<LastSchemaChange>>);

impl SchemaChangeStatus {
    pub fn set(&self, change: LastSchemaChange) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(change);
    }

    /// Updates the last change if it is still the one for `replica_version`.
    pub fn update(&self, replica_version: &str, f: impl FnOnce(&mut LastSchemaChange)) {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = last.as_mut()
            && c.replica_version == replica_version
        {
            f(c)
        }
    }

    pub fn get(&self) -> Option<LastSchemaChange> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl LastSchemaChange {
    pub fn now(
        kind: ChangeKind,
        shard: &crate::zero::catalog::Shard,
        replica_version: &str,
        from: Option<&str>,
        to: &str,
    ) -> Self {
        LastSchemaChange {
            kind,
            app_id: shard.app_id.clone(),
            shard_num: shard.shard_num,
            replica_version: replica_version.to_string(),
            from_config_hash: from.map(str::to_string),
            to_config_hash: to.to_string(),
            steps: None,
            reason: None,
            watermark: None,
            state: None,
            rows: None,
            at_ms: now_ms(),
            committed_at_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zero::catalog::Shard;
    use serde_json::json;

    #[test]
    fn the_status_json_has_the_documented_shape() {
        let shard = Shard {
            app_id: "zero".into(),
            shard_num: 0,
        };
        let mut c = LastSchemaChange::now(ChangeKind::InPlace, &shard, "1a", Some("h1"), "h2");
        c.at_ms = 5;
        c.steps = Some(vec!["add column users.age".into()]);
        c.state = Some(ChangeState::Committed);
        c.watermark = Some("1b".into());
        c.rows = Some(3);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"kind": "in-place", "appID": "zero", "shardNum": 0, "replicaVersion": "1a",
                "fromConfigHash": "h1", "toConfigHash": "h2", "steps": ["add column users.age"],
                "watermark": "1b", "state": "committed", "rows": 3, "atMs": 5})
        );
        let mut r = LastSchemaChange::now(ChangeKind::Reset, &shard, "1a", None, "h2");
        r.at_ms = 5;
        r.reason = Some("why".into());
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"kind": "reset", "appID": "zero", "shardNum": 0, "replicaVersion": "1a",
                "fromConfigHash": null, "toConfigHash": "h2", "reason": "why", "atMs": 5})
        );
    }
}
