//! Opening TCP connections, for every client in this crate (AMQP, STOMP, the
//! web subscribers): connect with Nagle off, and bound a handshake in time.

use std::fmt::Display;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

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

/// Connect to the broker of `uri` from source address 127.0.0.(1 + slot %
/// `spread`) when the broker is on IPv4 loopback and `spread` > 1: one source
/// address has ~28,000 ephemeral ports, tens of thousands of clients need more.
pub(crate) async fn connect_from(uri: &AmqpUri, slot: usize, spread: u8) -> Result<TcpStream> {
    let ip = uri
        .host
        .parse::<Ipv4Addr>()
        .ok()
        .filter(|ip| ip.is_loopback());
    let Some(ip) = ip.filter(|_| spread > 1) else {
        return connect(&uri.host, uri.port, uri).await;
    };
    let source = Ipv4Addr::new(127, 0, 0, 1 + (slot % spread as usize) as u8);
    let socket = TcpSocket::new_v4()?;
    bind_address_no_port(&socket);
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket
        .connect(SocketAddr::new(IpAddr::V4(ip), uri.port))
        .await
        .map_err(|e| Error::Other(format!("connecting to {uri} from {source}: {e}")))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Let `connect` pick the source port (Linux `IP_BIND_ADDRESS_NO_PORT`): a
/// `bind` to port 0 searches for a free port on its own, which gets slow with
/// tens of thousands of sockets on the address and made the load generator,
/// not the broker, the limit of the connect-rate run. Best effort.
fn bind_address_no_port(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option of its size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
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
