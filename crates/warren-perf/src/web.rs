//! Clients of a broker's web listener, for the web scenarios
//! ([`crate::web_idle`], [`crate::web_fanout`]): a subscriber is one connection,
//! as one browser page following one feed.
//!
//! * [`WsSubscriber`]: STOMP over WebSocket, as RabbitMQ's Web-STOMP plugin
//!   serves it (`ws://HOST:PORT/ws`, subprotocol `v12.stomp`): CONNECT, then
//!   one SUBSCRIBE (ack `auto`) whose RECEIPT says the subscription is in place.
//!   Heart-beats `10000,10000`, the default of stomp.js (@stomp/stompjs), as a
//!   browser page would; without them RabbitMQ's Web-STOMP closes a WebSocket
//!   that was silent for 60 s (Cowboy's idle timeout). tokio-tungstenite (the
//!   version axum already uses) with small buffers, so that ten thousand of
//!   them fit in the load generator.
//! * [`SseSubscriber`]: a Server-Sent Events feed (`GET /sse?destination=...`,
//!   Warren only) over a plain TCP stream: the HTTP/1.1 request written by hand,
//!   the response headers read, then the (chunked) body parsed into events.
//!   The feed's subscription exists once the response headers arrive.
//!
//! Also [`raise_nofile_limit`]: ten thousand subscribers need ten thousand file
//! descriptors.

use base64::Engine;
use bytes::{Buf, BytesMut};
use clap::ValueEnum;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::Decoder;
use warren_stomp::{Command, Config, Frame, StompCodec, StompDecoder, StompEncoder, Version};

use crate::client::{Error, Result};
use crate::net::{self, with_timeout};
use crate::stomp::{check_version, connect_headers};
use crate::uri::{authority, percent_encode, split_host_port, AmqpUri};

/// Connecting, upgrading, logging in and subscribing must be done by then.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Waiting for the RECEIPT of a DISCONNECT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest HTTP response head accepted from an SSE endpoint.
const MAX_HEAD: usize = 16 * 1024;
/// tungstenite's read buffer (allocated up front; its default is 128 KiB).
const WS_READ_BUFFER: usize = 4 * 1024;
/// CONNECT's `heart-beat`: stomp.js's default (10 s both ways).
const WS_HEARTBEAT: &[u8] = b"10000,10000";
const WS_HEARTBEAT_MS: u64 = 10_000;

/// How a web subscriber reaches the broker.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebTransport {
    /// STOMP over WebSocket (Web-STOMP, subprotocol v12.stomp).
    Ws,
    /// Server-Sent Events (GET /sse?destination=..., Warren only).
    Sse,
}

impl WebTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            WebTransport::Ws => "ws",
            WebTransport::Sse => "sse",
        }
    }
}

/// The web listener: `ws://HOST:PORT/PATH` or `http://HOST:PORT/PATH`. Either
/// form serves both transports: WebSocket goes to the path (default `/ws`),
/// SSE to `/sse` (or the path, unless it is `/ws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl {
    pub host: String,
    pub port: u16,
    /// As given, "" when none.
    pub path: String,
}

impl WebUrl {
    pub const DEFAULT: &'static str = "ws://127.0.0.1:15674/ws";

    pub fn parse(s: &str) -> std::result::Result<WebUrl, String> {
        let rest = ["ws://", "http://"]
            .iter()
            .find_map(|p| {
                s.get(..p.len())
                    .filter(|h| h.eq_ignore_ascii_case(p))
                    .map(|_| &s[p.len()..])
            })
            .ok_or_else(|| {
                format!(
                    "web URL must be ws://HOST:PORT/PATH or http://HOST:PORT, got {s:?} (no TLS)"
                )
            })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "web URL {s:?}: credentials come from --uri, not the web URL"
            ));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| format!("web URL {s:?}: unclosed '['"))?;
        if host.is_empty() {
            return Err(format!("web URL {s:?} has no host"));
        }
        let port = match port {
            None | Some("") => 15674,
            Some(p) => p
                .parse()
                .map_err(|_| format!("web URL {s:?}: bad port {p:?}"))?,
        };
        Ok(WebUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    /// The path a transport's requests go to.
    pub fn path_for(&self, transport: WebTransport) -> &str {
        match (transport, self.path.as_str()) {
            (WebTransport::Ws, "" | "/") => "/ws",
            (WebTransport::Sse, "" | "/" | "/ws") => "/sse",
            (_, p) => p,
        }
    }

    /// The URL a transport uses, for reports.
    pub fn display_for(&self, transport: WebTransport) -> String {
        let scheme = match transport {
            WebTransport::Ws => "ws",
            WebTransport::Sse => "http",
        };
        format!(
            "{scheme}://{}{}",
            self.authority(),
            self.path_for(transport)
        )
    }
}

impl fmt::Display for WebUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.authority(), self.path)
    }
}

/// Raise this process's soft open-file limit to the hard limit, and check that
/// it allows `needed` descriptors. Returns the soft limit now in force.
pub fn raise_nofile_limit(needed: u64) -> Result<u64> {
    let (soft, hard) = nofile_limit()?;
    let (soft, hard) = if soft < hard {
        // An unlimited hard limit cannot be the soft one (the kernel caps
        // descriptors at fs.nr_open); ask for a generous number instead.
        let want = if hard == libc::RLIM_INFINITY {
            1 << 20
        } else {
            hard
        };
        let rl = libc::rlimit {
            rlim_cur: want,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads a valid, initialised struct.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
        nofile_limit()?
    } else {
        (soft, hard)
    };
    if soft < needed {
        return Err(Error::Other(format!(
            "this run needs about {needed} file descriptors but the open-file limit is {soft} \
             (hard limit {hard}): raise it (ulimit -n, LimitNOFILE=, /etc/security/limits.conf) \
             or use fewer --subscribers"
        )));
    }
    Ok(soft)
}

fn nofile_limit() -> Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(Error::Other(format!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok((rl.rlim_cur, rl.rlim_max))
}

/// Percent-encode a query parameter value (`/` kept: it is legal in a query,
/// and destinations are full of it).
fn query_encode(s: &str) -> String {
    percent_encode(s, b"-._~/")
}

async fn connect(url: &WebUrl) -> Result<TcpStream> {
    net::connect(&url.host, url.port, url.authority()).await
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> Error {
    Error::Other(format!("WebSocket: {e}"))
}

/// One STOMP-over-WebSocket subscriber.
pub struct WsSubscriber {
    ws: WebSocketStream<TcpStream>,
    decoder: StompDecoder,
    encoder: StompEncoder,
    /// Payloads received and not yet decoded into frames.
    inbuf: BytesMut,
    /// How often we must send something (negotiated), and when next.
    heartbeat: Option<Duration>,
    next_heartbeat: tokio::time::Instant,
}

impl WsSubscriber {
    /// Upgrade, CONNECT as `creds` (vhost in `host`, stomp.js's heart-beats)
    /// and SUBSCRIBE to `destination` with ack `auto`, waiting for its RECEIPT.
    async fn open(url: &WebUrl, creds: &AmqpUri, destination: &str) -> Result<WsSubscriber> {
        let socket = connect(url).await?;
        let mut request = url
            .display_for(WebTransport::Ws)
            .into_client_request()
            .map_err(ws_error)?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .write_buffer_size(0);
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, socket, Some(config))
                .await
                .map_err(ws_error)?;
        let (decoder, encoder) = StompCodec::new(Config::client()).into_parts();
        let mut sub = WsSubscriber {
            ws,
            decoder,
            encoder,
            inbuf: BytesMut::new(),
            heartbeat: None,
            next_heartbeat: tokio::time::Instant::now(),
        };
        sub.send(&Command::Connect, &connect_headers(creds, WS_HEARTBEAT))
            .await?;
        let frame = sub.recv().await?;
        if frame.command != Command::Connected {
            return Err(Error::Other(format!(
                "expected CONNECTED, got {}",
                frame.command
            )));
        }
        check_version(&frame)?;
        sub.decoder.set_version(Version::V1_2);
        sub.encoder.set_version(Version::V1_2);
        // We send every max(ours, what the server wants), as stomp.js does.
        let wanted = frame
            .header("heart-beat")
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| h.split(',').nth(1))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if wanted > 0 {
            let every = Duration::from_millis(wanted.max(WS_HEARTBEAT_MS));
            sub.heartbeat = Some(every);
            sub.next_heartbeat = tokio::time::Instant::now() + every;
        }
        sub.send(
            &Command::Subscribe,
            &[
                (b"id", b"0"),
                (b"destination", destination.as_bytes()),
                (b"ack", b"auto"),
                (b"receipt", b"sub-0"),
            ],
        )
        .await?;
        let frame = sub.recv().await?;
        if frame.command != Command::Receipt {
            return Err(Error::Other(format!(
                "expected the SUBSCRIBE's RECEIPT, got {}",
                frame.command
            )));
        }
        Ok(sub)
    }

    /// Send one frame (no body) as one text message.
    async fn send(&mut self, command: &Command, headers: &[(&[u8], &[u8])]) -> Result<()> {
        let mut out = BytesMut::new();
        let mut w = self.encoder.writer(&mut out, command, 128);
        for (n, v) in headers {
            w.header(n, v);
        }
        w.finish(b"");
        let text = String::from_utf8(out.to_vec())
            .map_err(|_| Error::Other("a STOMP frame to send is not UTF-8".into()))?;
        self.sent_something();
        self.ws.send(Message::text(text)).await.map_err(ws_error)
    }

    fn sent_something(&mut self) {
        if let Some(every) = self.heartbeat {
            self.next_heartbeat = tokio::time::Instant::now() + every;
        }
    }

    /// The next frame (heart-beats skipped; an ERROR frame is an error). None
    /// when the broker closed the WebSocket.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            while let Some(item) = self.decoder.decode(&mut self.inbuf)? {
                if let Some(f) = crate::stomp::check(item)? {
                    return Ok(Some(f));
                }
            }
            let message = match self.heartbeat {
                None => self.ws.next().await,
                Some(_) => {
                    tokio::select! {
                        m = self.ws.next() => m,
                        _ = tokio::time::sleep_until(self.next_heartbeat) => {
                            self.sent_something();
                            self.ws.send(Message::text("\n")).await.map_err(ws_error)?;
                            continue;
                        }
                    }
                }
            };
            match message {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(t))) => self.inbuf.extend_from_slice(t.as_bytes()),
                Some(Ok(Message::Binary(b))) => self.inbuf.extend_from_slice(&b),
                // Pings are answered by tungstenite.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ws_error(e)),
            }
        }
    }

    async fn recv(&mut self) -> Result<Frame> {
        self.next_frame()
            .await?
            .ok_or_else(|| Error::Other("broker closed the WebSocket".into()))
    }

    /// The body of the next MESSAGE; None when the broker closed the WebSocket.
    pub async fn next_body(&mut self) -> Result<Option<bytes::Bytes>> {
        loop {
            match self.next_frame().await? {
                None => return Ok(None),
                Some(f) if f.command == Command::Message => return Ok(Some(f.body)),
                Some(_) => {}
            }
        }
    }

    /// UNSUBSCRIBE with a receipt and wait for it, then DISCONNECT: true if
    /// the connection was still open and answered (the broker kept the
    /// subscriber all along). (Not a DISCONNECT's receipt: RabbitMQ's
    /// Web-STOMP closes the WebSocket without sending it.)
    pub async fn close(mut self) -> bool {
        let answered = with_timeout("UNSUBSCRIBE", CLOSE_TIMEOUT, async {
            self.send(
                &Command::Unsubscribe,
                &[(b"id", b"0"), (b"receipt", b"unsub-0")],
            )
            .await?;
            loop {
                match self.next_frame().await? {
                    Some(f) if f.command == Command::Receipt => return Ok(()),
                    Some(_) => {}
                    None => return Err(Error::Other("closed".into())),
                }
            }
        })
        .await
        .is_ok();
        let _ = self.send(&Command::Disconnect, &[]).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.ws.close(None)).await;
        answered
    }
}

/// One Server-Sent Events subscriber.
pub struct SseSubscriber {
    stream: TcpStream,
    dec: SseDecoder,
}

/// The response body of a feed, decoded as it arrives: HTTP chunks, then
/// events.
pub(crate) struct SseDecoder {
    /// Bytes read and not yet de-chunked.
    raw: BytesMut,
    /// `None`: the body is not chunked (HTTP/1.0 style, ends at EOF).
    chunks: Option<Dechunker>,
    /// Event stream text not yet split into events.
    text: BytesMut,
}

impl SseDecoder {
    fn decode_raw(&mut self) -> Result<()> {
        match &mut self.chunks {
            Some(d) => d.feed(&mut self.raw, &mut self.text),
            None => {
                self.text.extend_from_slice(&self.raw);
                self.raw.clear();
                Ok(())
            }
        }
    }

    /// Bytes read from the socket.
    pub(crate) fn absorb(&mut self, bytes: &[u8]) -> Result<()> {
        self.raw.extend_from_slice(bytes);
        self.decode_raw()
    }

    /// The data of the next complete event that has any (comments and
    /// data-less events skipped).
    pub(crate) fn next_data(&mut self) -> Option<Vec<u8>> {
        while let Some(event) = take_event(&mut self.text) {
            if event.is_some() {
                return event;
            }
        }
        None
    }
}

impl SseSubscriber {
    /// `GET /sse?destination=...` with Basic credentials; returns once the
    /// response headers (status 200) have arrived.
    async fn open(url: &WebUrl, creds: &AmqpUri, destination: &str) -> Result<SseSubscriber> {
        let mut stream = connect(url).await?;
        let mut target = format!(
            "{}?destination={}",
            url.path_for(WebTransport::Sse),
            query_encode(destination)
        );
        if creds.vhost != "/" {
            target += &format!("&vhost={}", query_encode(&creds.vhost));
        }
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.user, creds.password));
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n\
             Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
            url.authority()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = BytesMut::with_capacity(1024);
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if raw.len() > MAX_HEAD {
                return Err(Error::Other("SSE response head too large".into()));
            }
            if stream.read_buf(&mut raw).await? == 0 {
                return Err(Error::Other(format!(
                    "SSE: connection closed before the response headers ({})",
                    String::from_utf8_lossy(&raw).trim()
                )));
            }
        };
        let head = raw.split_to(head_end);
        let head = String::from_utf8_lossy(&head);
        let status_line = head.lines().next().unwrap_or("");
        let status = status_line.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            return Err(Error::Other(format!(
                "SSE {target}: {status_line}: {}",
                String::from_utf8_lossy(&raw).trim()
            )));
        }
        let chunked = head.lines().skip(1).any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().contains("chunked")
            })
        });
        let mut dec = SseDecoder {
            raw,
            chunks: chunked.then(Dechunker::default),
            text: BytesMut::new(),
        };
        dec.decode_raw()?;
        Ok(SseSubscriber { stream, dec })
    }

    /// The socket, blocking-mode untouched (non-blocking), out of tokio, and
    /// the decoder with whatever was read already: for a reader that polls
    /// sockets itself ([`crate::sse_reader`]).
    pub(crate) fn into_parts(self) -> Result<(std::os::fd::OwnedFd, SseDecoder)> {
        let std = self.stream.into_std()?;
        Ok((std.into(), self.dec))
    }

    /// The data of the next event (comments and data-less events skipped);
    /// None when the stream ended.
    pub async fn next_body(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(data) = self.dec.next_data() {
                return Ok(Some(data));
            }
            if self.stream.read_buf(&mut self.dec.raw).await? == 0 {
                return Ok(None);
            }
            self.dec.decode_raw()?;
        }
    }

    /// Whether the broker still holds the stream open: reads (and drops)
    /// whatever arrived, without waiting.
    pub fn is_open(&mut self) -> bool {
        loop {
            self.dec.raw.clear();
            self.dec.raw.reserve(1024);
            match self.stream.try_read_buf(&mut self.dec.raw) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }
}

/// HTTP/1.1 chunked transfer coding, decoded incrementally.
#[derive(Debug, Default)]
struct Dechunker {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a size line.
    #[default]
    Size,
    /// Inside a chunk: this many bytes to go.
    Data(usize),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (empty) chunk.
    Done,
}

impl Dechunker {
    /// Move what `input` holds of the body into `out`; an incomplete piece
    /// stays in `input` for the next call.
    fn feed(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<()> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(eol) = input.windows(2).position(|w| w == b"\r\n") else {
                        if input.len() > 1024 {
                            return Err(Error::Other("bad chunk size line".into()));
                        }
                        return Ok(());
                    };
                    let line = &input[..eol];
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                        .ok_or_else(|| {
                            Error::Other(format!(
                                "bad chunk size {:?}",
                                String::from_utf8_lossy(line)
                            ))
                        })?;
                    input.advance(eol + 2);
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = left.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input.advance(take);
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(());
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(Error::Other("chunk not followed by CRLF".into()));
                    }
                    input.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Done => {
                    input.clear();
                    return Ok(());
                }
            }
        }
    }
}

/// The next complete event of `text`, removed from it: `Some(Some(data))` (the
/// `data` lines joined with LF), `Some(None)` for one without data (a comment,
/// i.e. a heart-beat), None if no event is complete yet.
fn take_event(text: &mut BytesMut) -> Option<Option<Vec<u8>>> {
    let end = text.windows(2).position(|w| w == b"\n\n")?;
    let event = text.split_to(end + 2);
    let mut data: Option<Vec<u8>> = None;
    for line in event[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = line.strip_prefix(b"data:") {
            let v = v.strip_prefix(b" ").unwrap_or(v);
            match &mut data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(v);
                }
                None => data = Some(v.to_vec()),
            }
        }
    }
    Some(data)
}

/// A web subscriber of either transport.
pub enum Subscriber {
    Ws(Box<WsSubscriber>),
    Sse(SseSubscriber),
}

impl Subscriber {
    /// Open and subscribe (see [`WsSubscriber`], [`SseSubscriber`]), within
    /// [`OPEN_TIMEOUT`].
    pub async fn open(
        transport: WebTransport,
        url: &WebUrl,
        creds: &AmqpUri,
        destination: &str,
    ) -> Result<Subscriber> {
        let opening = async {
            Ok(match transport {
                WebTransport::Ws => {
                    Subscriber::Ws(Box::new(WsSubscriber::open(url, creds, destination).await?))
                }
                WebTransport::Sse => {
                    Subscriber::Sse(SseSubscriber::open(url, creds, destination).await?)
                }
            })
        };
        let what = format!("opening {}", url.display_for(transport));
        with_timeout(what, OPEN_TIMEOUT, opening).await
    }

    /// The body of the next message; None when the broker closed the stream.
    pub async fn next_body(&mut self) -> Result<Option<Vec<u8>>> {
        match self {
            Subscriber::Ws(s) => Ok(s.next_body().await?.map(|b| b.to_vec())),
            Subscriber::Sse(s) => s.next_body().await,
        }
    }

    /// Close; true if the broker still had the subscriber open (WebSocket: it
    /// answered a DISCONNECT's receipt; SSE: the stream had not ended).
    pub async fn close(self) -> bool {
        match self {
            Subscriber::Ws(s) => s.close().await,
            Subscriber::Sse(mut s) => s.is_open(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_web_urls() {
        let u = WebUrl::parse("ws://127.0.0.1:15674/ws").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 15674, "/ws")
        );
        assert_eq!(u.path_for(WebTransport::Ws), "/ws");
        assert_eq!(u.path_for(WebTransport::Sse), "/sse");
        assert_eq!(
            u.display_for(WebTransport::Sse),
            "http://127.0.0.1:15674/sse"
        );
        let u = WebUrl::parse("http://localhost:15684").unwrap();
        assert_eq!(u.display_for(WebTransport::Ws), "ws://localhost:15684/ws");
        let u = WebUrl::parse("HTTP://[::1]/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 15674));
        assert_eq!(u.display_for(WebTransport::Sse), "http://[::1]:15674/x");
        assert!(WebUrl::parse("wss://h/ws").is_err());
        assert!(WebUrl::parse("ws://:1/ws").is_err());
        assert!(WebUrl::parse("ws://h:x/ws").is_err());
        assert!(WebUrl::parse("ws://u:p@h/ws").is_err());
    }

    #[test]
    fn dechunks_across_reads() {
        let body = b"5\r\nid: 1\r\n9;ext=1\r\n\ndata: ab\r\n2\r\n\n\n\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut d = Dechunker::default();
            let mut input = BytesMut::new();
            let mut out = BytesMut::new();
            input.extend_from_slice(&body[..split]);
            d.feed(&mut input, &mut out).unwrap();
            input.extend_from_slice(&body[split..]);
            d.feed(&mut input, &mut out).unwrap();
            assert_eq!(&out[..], b"id: 1\ndata: ab\n\n", "split at {split}");
            assert_eq!(d.state, ChunkState::Done);
        }
        let mut d = Dechunker::default();
        assert!(d
            .feed(&mut BytesMut::from(&b"zz\r\n"[..]), &mut BytesMut::new())
            .is_err());
    }

    #[test]
    fn splits_events() {
        let mut t = BytesMut::from(
            &b":\n\nid: 1\ndata: a\ndata:b\n\nid: 2\nevent: k\ndata: c\n\nid: 3"[..],
        );
        assert_eq!(take_event(&mut t), Some(None));
        assert_eq!(take_event(&mut t), Some(Some(b"a\nb".to_vec())));
        assert_eq!(take_event(&mut t), Some(Some(b"c".to_vec())));
        assert_eq!(take_event(&mut t), None);
        assert_eq!(&t[..], b"id: 3");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(query_encode("/exchange/a b&c"), "/exchange/a%20b%26c");
    }
}
