//! Self-tests of the kit against the real services: MongoDB (a change stream sees an insert)
//! and PostgreSQL (a database is created and answers through its URL).

use std::time::Duration;

use bson::{Document, doc};
use futures::StreamExt;
use zerostack_harness::{Mongo, Postgres};

#[tokio::test]
async fn mongo_replica_set_serves_change_streams() -> anyhow::Result<()> {
    let mongo = Mongo::start().await?;
    let client = mongo.client().await?;
    let coll = client.database("kit").collection::<Document>("things");
    let mut stream = coll.watch().await?;
    coll.insert_one(doc! { "_id": "a", "n": 1 }).await?;
    let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await?
        .expect("change stream ended")?;
    assert_eq!(
        event.operation_type,
        mongodb::change_stream::event::OperationType::Insert
    );
    assert_eq!(event.full_document.unwrap().get_str("_id")?, "a");
    Ok(())
}

#[tokio::test]
async fn mongo_restart_keeps_data_and_kill9_stops_it() -> anyhow::Result<()> {
    let mut mongo = Mongo::start().await?;
    let coll = mongo
        .client()
        .await?
        .database("kit")
        .collection::<Document>("things");
    coll.insert_one(doc! { "_id": "kept" }).await?;
    let pid = mongo.pid();
    mongo.restart().await?;
    assert_ne!(pid, mongo.pid(), "restart must start a new mongod");
    let coll = mongo
        .client()
        .await?
        .database("kit")
        .collection::<Document>("things");
    assert_eq!(coll.count_documents(doc! {}).await?, 1);

    mongo.kill9().await?;
    assert!(!mongo.process().is_running());
    mongo.start_again().await?;
    let coll = mongo
        .client()
        .await?
        .database("kit")
        .collection::<Document>("things");
    assert!(coll.find_one(doc! { "_id": "kept" }).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn postgres_cluster_creates_databases() -> anyhow::Result<()> {
    let pg = Postgres::start().await?;
    pg.create_db("zero_cvr").await?;
    assert_eq!(
        pg.psql("zero_cvr", "select current_database()").await?,
        "zero_cvr"
    );
    // The URL works for an independent client too.
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "select 1", &pg.url("zero_cvr")])
        .output()
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    assert!(pg.create_db("bad name; drop").await.is_err());
    Ok(())
}
