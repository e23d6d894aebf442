//! Opening TCP connections, for every client in this crate (AMQP, STOMP, the
//! web subscribers): connect with Nagle off, and bound a handshake in time.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;

use crate::client::{Error, Result};
use crate::tls::{ReadHalf, WriteHalf};
use crate::uri::AmqpUri;

/// Connecting and logging in (AMQP or STOMP) must be done by then.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Read capacity and output buffer of a connection: room for a batch.
pub(crate) const IO_BUFFER: usize = 64 * 1024;

/// Connect to `host:port`; errors name the peer as `peer`.
pub(crate) async fn connect(host: &str, port: u16, peer: impl Display) -> Result<TcpStream> {
    let socket = TcpStream::connect((host, port))
        .await
        .map_err(|e| Error::Other(format!("connecting to {peer}: {e}")))?;
    // Latency is the point of many runs: never let Nagle hold back a small
    // publish or ack.
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// Connect to the broker of `uri` (TLS for amqps://, stomps://, mqtts://),
/// split into halves so that the hot loops can read and write in one
/// `select!`.
pub(crate) async fn connect_split(uri: &AmqpUri) -> Result<(ReadHalf, WriteHalf)> {
    let tcp = connect(&uri.host, uri.port, uri).await?;
    crate::tls::split(tcp, uri.tls, &uri.host).await
}

/// `f`, or an error saying `what` got no answer within `limit`.
pub(crate) async fn with_timeout<T>(
    what: impl Display,
    limit: Duration,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(Error::Other(format!("{what}: no answer within {limit:?}"))),
    }
}
