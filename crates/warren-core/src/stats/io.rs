//! Counting a connection's received octets where its adapter reads them.
//! (Sent octets are counted by the core's writer task, once per batch: see
//! [`crate::outlet::run_writer`].)

use super::fields::ConnectionStats;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// An `AsyncRead` that counts what passes through it into a connection's
/// `recv_oct` / `recv_cnt`: two relaxed adds per read that returned data
/// (a read fills the decoder's buffer with many frames), nothing per message.
pub struct CountingReader<R> {
    inner: R,
    stats: Arc<ConnectionStats>,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R, stats: Arc<ConnectionStats>) -> Self {
        CountingReader { inner, stats }
    }

    /// The counters this reader adds to.
    pub fn stats(&self) -> &Arc<ConnectionStats> {
        &self.stats
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.stats.received(n);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ConnectionField;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_octets_and_reads() {
        let (mut a, b) = tokio::io::duplex(64);
        let stats = Arc::new(ConnectionStats::default());
        let mut r = CountingReader::new(b, stats.clone());
        a.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        let n = r.read(&mut buf).await.unwrap();
        assert_eq!(n, 5);
        drop(a);
        assert_eq!(r.read(&mut buf).await.unwrap(), 0);
        assert_eq!(stats.get(ConnectionField::RecvOct), 5);
        assert_eq!(stats.get(ConnectionField::RecvCnt), 1);
    }
}
