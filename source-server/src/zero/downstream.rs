//! The sending half of a zero-cache connection ([`Downstream`]), so that the initial sync and the
//! streaming write to a trait, and tests of the streaming record what it sends ([`Recorder`]).
//!
//! `feed` queues a message and waits only when the socket's buffer is full (that wait is the
//! backpressure); `flush` pushes everything out. The streaming flushes once per change-stream
//! batch (not per transaction), the initial sync once after its commit.

use futures::{Sink, SinkExt};

#[derive(Debug, thiserror::Error)]
#[error("zero-cache connection closed")]
pub struct DownstreamClosed;

pub trait Downstream {
    fn feed(&mut self, message: String) -> impl Future<Output = Result<(), DownstreamClosed>>;
    fn flush(&mut self) -> impl Future<Output = Result<(), DownstreamClosed>>;
}

/// Any sink of WebSocket text messages.
pub struct WsDownstream<S> {
    pub sink: S,
}

impl<S> Downstream for WsDownstream<S>
where
    S: Sink<axum::extract::ws::Message> + Unpin,
{
    async fn feed(&mut self, message: String) -> Result<(), DownstreamClosed> {
        self.sink
            .feed(axum::extract::ws::Message::Text(message.into()))
            .await
            .map_err(|_| DownstreamClosed)
    }

    async fn flush(&mut self) -> Result<(), DownstreamClosed> {
        self.sink.flush().await.map_err(|_| DownstreamClosed)
    }
}

/// Collects messages and counts flushes in memory, for tests.
#[derive(Debug, Default)]
pub struct Recorder {
    pub messages: Vec<String>,
    pub flushes: usize,
}

impl Downstream for Recorder {
    async fn feed(&mut self, message: String) -> Result<(), DownstreamClosed> {
        self.messages.push(message);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), DownstreamClosed> {
        self.flushes += 1;
        Ok(())
    }
}
