//! The pipeline-mapping row (issue 15): how fast rows reach zero-cache's replica when they come
//! from a pipeline mapping (`$unwind` of a 10-element array, then `$addFields` for a composite
//! key) instead of a plain one-document-one-row mapping, under the same burst load. Both paths
//! run in the same process, each with a fresh source-server and a fresh zero-cache, in an
//! A-B-B-A order so that neither always meets the warmer machine, and both produce the same
//! number of rows with the same rows per `insert_many`; the figure is rows/s produced in the
//! replica, so the ratio is per row produced.

use std::time::Duration;

use anyhow::Context;
use zerostack_harness::ZeroCache;

use super::probes::{CountWatch, SourceServer, cpu_secs};
use super::sampler::{TreeSampler, TreeUsage};
use super::workload::{
    ITEMS_PER_ORDER, ITEMS_TABLE, ORDERS, TABLE, items_mappings_json, items_schema_json,
    mongo_insert_orders, mongo_insert_range, now_ms,
};
use super::{Ctx, say};

/// Bursts per mapping; the best of each is reported (as for the initial sync).
const ROUNDS: usize = 2;

/// Rows sent before each burst, not counted: zero-cache's JIT and caches warm up the same way
/// on both paths.
const WARM_UP_ROWS: u64 = 2000;

/// The plain target of the ratio (issue 15): pipeline rows/s ≥ 0.8 × plain rows/s.
pub const TARGET: f64 = 0.8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mapping {
    /// `messages` from `messages`, one row per document.
    Plain,
    /// `items` from `orders` through `$unwind` + `$addFields`, ten rows per document.
    Pipeline,
}

impl Mapping {
    fn name(self) -> &'static str {
        match self {
            Mapping::Plain => "plain",
            Mapping::Pipeline => "pipeline",
        }
    }

    fn rows_per_document(self) -> u64 {
        match self {
            Mapping::Plain => 1,
            Mapping::Pipeline => ITEMS_PER_ORDER,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Mapping::Plain => TABLE,
            Mapping::Pipeline => ITEMS_TABLE,
        }
    }
}

/// One burst into a fresh zero-cache.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct MappingBurst {
    pub mapping: Mapping,
    pub documents: u64,
    /// Rows the burst produced in the replica.
    pub rows: u64,
    /// First write → the replica holding every row.
    pub rows_per_s: f64,
    /// How fast MongoDB took the writes (rows/s of the documents written).
    pub written_rows_per_s: f64,
    /// Zero transactions source-server sent for the burst.
    pub transactions: f64,
    pub source_cpu_us_per_row: f64,
    pub zero_cache: TreeUsage,
}

/// Every burst of the row, in the order they ran.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PipelineRun {
    pub runs: Vec<MappingBurst>,
}

impl PipelineRun {
    /// The fastest burst of one mapping.
    pub fn best(&self, mapping: Mapping) -> Option<MappingBurst> {
        self.runs
            .iter()
            .filter(|r| r.mapping == mapping)
            .copied()
            .max_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s))
    }

    /// Pipeline rows/s over plain rows/s (best of each).
    pub fn ratio(&self) -> Option<f64> {
        let (p, q) = (self.best(Mapping::Pipeline)?, self.best(Mapping::Plain)?);
        (q.rows_per_s > 0.0).then(|| p.rows_per_s / q.rows_per_s)
    }
}

impl Ctx<'_> {
    /// The row: plain and pipeline bursts of `--rows` rows each, A-B-B-A.
    pub async fn pipeline_vs_plain(&self) -> anyhow::Result<PipelineRun> {
        let mut run = PipelineRun::default();
        for round in 0..ROUNDS {
            let order = if round % 2 == 0 {
                [Mapping::Plain, Mapping::Pipeline]
            } else {
                [Mapping::Pipeline, Mapping::Plain]
            };
            for mapping in order {
                run.runs.push(self.mapping_burst(mapping, round).await?);
            }
        }
        if let Some(r) = run.ratio() {
            say(format!(
                "pipeline mapping / plain mapping, rows/s per row produced (best of {ROUNDS}): {r:.2}× (target ≥ {TARGET:.2}×)"
            ));
        }
        Ok(run)
    }

    async fn mapping_burst(&self, mapping: Mapping, round: usize) -> anyhow::Result<MappingBurst> {
        let per_doc = mapping.rows_per_document();
        let documents = (self.args.rows / per_doc).max(1);
        let rows = documents * per_doc;
        // The same rows per insert_many on both paths.
        let batch = (self.args.batch / per_doc).max(1);
        let warm_docs = (WARM_UP_ROWS.min(rows) / per_doc).max(1);
        let name = mapping.name();
        let db = format!("bench_{name}_{round}");
        let database = self.mongo.client().await?.database(&db);
        let service = self.state.service(&format!("source-{name}-{round}"))?;
        let (coll, source) = match mapping {
            Mapping::Plain => (
                self.collection(&db).await?,
                SourceServer::start(
                    self.source_bin,
                    &service,
                    &self.mongo.uri(),
                    &db,
                    self.source_env,
                )
                .await?,
            ),
            Mapping::Pipeline => {
                // `$unwind` rows cannot be found again from `_id` alone: the source requires
                // pre-images on the collection, as a real deployment would have them.
                database
                    .create_collection(ORDERS)
                    .change_stream_pre_and_post_images(
                        mongodb::options::ChangeStreamPreAndPostImages::builder()
                            .enabled(true)
                            .build(),
                    )
                    .await
                    .with_context(|| format!("creating {db}.{ORDERS} with pre-images"))?;
                let source = SourceServer::start_with_files(
                    self.source_bin,
                    &service,
                    &self.mongo.uri(),
                    &db,
                    self.source_env,
                    &items_schema_json(),
                    &items_mappings_json(),
                )
                .await?;
                (database.collection(ORDERS), source)
            }
        };
        let insert = |from: u64, to: u64, batch: u64| {
            let coll = coll.clone();
            async move {
                match mapping {
                    Mapping::Plain => mongo_insert_range(&coll, from, to, batch).await,
                    Mapping::Pipeline => mongo_insert_orders(&coll, from, to, batch).await,
                }
            }
        };
        let opts = self
            .zero_cache_options(&format!("{name}{round}"), source.ws_url())
            .await?;
        let mut zc = ZeroCache::start_in(
            self.state.service(&format!("zero-cache-{name}-{round}"))?,
            opts,
        )
        .await?;
        let table = mapping.table();
        // Warm-up, with ids after the burst's.
        let warm_rows = warm_docs * per_doc;
        let watch = CountWatch::start(&zc.replica_file(), table, warm_rows)?;
        insert(documents, documents + warm_docs, batch).await?;
        watch.wait(Duration::from_secs(300)).await?;
        let watch = CountWatch::start(&zc.replica_file(), table, warm_rows + rows)?;
        // The watcher must have opened the replica before the clock starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let txns0 = source.counter("zerostack_source_transactions_sent").await?;
        let cpu0 = cpu_secs(Some(source.process.pid()))?;
        let sampler = TreeSampler::start(zc.pid());
        let t0 = now_ms();
        insert(0, documents, batch).await?;
        let written = rows as f64 / ((now_ms() - t0) / 1000.0);
        let at = watch.wait(Duration::from_secs(600)).await?;
        let zero_cache = sampler.finish();
        let rows_per_s = rows as f64 / ((at - t0) / 1000.0);
        let cpu = cpu_secs(Some(source.process.pid()))? - cpu0;
        let transactions = source.counter("zerostack_source_transactions_sent").await? - txns0;
        zc.stop().await?;
        drop(source);
        let _ = database.drop().await;
        let b = MappingBurst {
            mapping,
            documents,
            rows,
            rows_per_s,
            written_rows_per_s: written,
            transactions,
            source_cpu_us_per_row: cpu * 1e6 / rows as f64,
            zero_cache,
        };
        say(format!(
            "{name} mapping burst, round {}: {documents} documents → {rows} rows at {rows_per_s:.0} rows/s ({transactions:.0} txns, written at {written:.0} rows/s, source CPU {:.1} µs/row, zero-cache CPU {:.1} s)",
            round + 1,
            b.source_cpu_us_per_row,
            zero_cache.cpu_secs
        ));
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(mapping: Mapping, rows_per_s: f64) -> MappingBurst {
        MappingBurst {
            mapping,
            documents: 1,
            rows: 1,
            rows_per_s,
            written_rows_per_s: 0.0,
            transactions: 0.0,
            source_cpu_us_per_row: 0.0,
            zero_cache: TreeUsage::default(),
        }
    }

    #[test]
    fn the_ratio_is_best_pipeline_over_best_plain() {
        let run = PipelineRun {
            runs: vec![
                burst(Mapping::Plain, 4000.0),
                burst(Mapping::Pipeline, 3000.0),
                burst(Mapping::Pipeline, 3600.0),
                burst(Mapping::Plain, 4500.0),
            ],
        };
        assert_eq!(run.best(Mapping::Plain).unwrap().rows_per_s, 4500.0);
        assert_eq!(run.ratio(), Some(0.8));
        let only_plain = PipelineRun {
            runs: vec![burst(Mapping::Plain, 4000.0)],
        };
        assert_eq!(only_plain.ratio(), None);
    }
}
