//! The MongoDB side: reading changes from MongoDB and keeping what the source must remember
//! there.
//!
//! - `change_stream`: the database change stream, driven by hand one `getMore` ahead;
//! - `change_event`: one event of it, read from raw BSON;
//! - `cluster_time`: MongoDB's position (a cluster time, a resume token) and its Zero watermark;
//! - `images`: which collections need pre- and post-images, and whether they have them;
//! - `replica_registry`: which replicas this source built, from which configuration;
//! - `reconnect`: which stream failures are worth a retry, and the backoff between attempts.
//!
//! Documents themselves become rows in `rows`; what is sent to zero-cache is in `zero`.

pub mod change_event;
pub mod change_stream;
pub mod cluster_time;
pub mod images;
pub mod reconnect;
pub mod replica_registry;
