//! A connection as the hot loops see it: framed reader, write half and output
//! buffer, borrowed apart so that one `select!` can read and write. The AMQP
//! ([`crate::client::Connection`]) and STOMP ([`crate::stomp::StompConnection`])
//! connections have this shape, so the producer ([`crate::produce`]) and
//! consumer ([`crate::consume`]) loops are written once for both.

use crate::tls::{ReadHalf, WriteHalf};
use bytes::{Buf, BytesMut};
use futures_util::{FutureExt, StreamExt};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, FramedRead};

use crate::client::{Error, Result};

/// Waiting for the broker to acknowledge a polite close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) type Reader<D> = FramedRead<ReadHalf, D>;

/// A connection's reader, writer and output buffer, borrowed apart.
pub(crate) type Parts<'a, D> = (&'a mut Reader<D>, &'a mut WriteHalf, &'a mut BytesMut);

/// What a connection's decoder hands out.
pub(crate) type Item<W> = <<W as Wire>::Codec as Decoder>::Item;

pub(crate) trait Wire {
    type Codec: Decoder<Error: Into<Error>>;

    fn wire(&mut self) -> Parts<'_, Self::Codec>;
}

/// What `reader.next()` gave, the end of the stream being an error.
pub(crate) fn or_closed<T, E: Into<Error>>(next: Option<std::result::Result<T, E>>) -> Result<T> {
    next.ok_or_else(|| Error::Other("broker closed the socket".into()))?
        .map_err(Into::into)
}

/// An item if one can be had without waiting: the loops drain what already
/// arrived before deciding what to write (batching).
pub(crate) fn try_next<D: Decoder<Error: Into<Error>>>(
    reader: &mut Reader<D>,
) -> Option<Result<D::Item>> {
    reader.next().now_or_never().map(or_closed)
}

/// Write everything buffered.
pub(crate) async fn flush(writer: &mut WriteHalf, out: &mut BytesMut) -> Result<()> {
    if !out.is_empty() {
        writer.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// After a close was sent: wait (briefly) until the broker acknowledges it
/// (`acked`), or the stream ends or fails, so that the broker has released
/// the connection before the next measurement starts. The rest is dropped.
pub(crate) async fn await_close<D: Decoder>(
    reader: &mut Reader<D>,
    acked: impl Fn(&D::Item) -> bool,
) {
    let wait = async {
        while let Some(Ok(item)) = reader.next().await {
            if acked(&item) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, wait).await;
}

/// Write what the socket takes now. Cancel-safe like `write` (nothing is
/// written if another `select!` branch wins), so reading never waits for a
/// full socket buffer.
pub(crate) async fn write_some(writer: &mut WriteHalf, out: &mut BytesMut) -> Result<()> {
    let n = writer.write(out).await?;
    if n == 0 {
        return Err(Error::Other("socket closed while publishing".into()));
    }
    out.advance(n);
    Ok(())
}
