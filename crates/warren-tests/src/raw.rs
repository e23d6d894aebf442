//! A minimal raw-socket AMQP 0-9-1 client for tests that must send exact
//! (including malformed) bytes and observe exactly what the server answers.

use std::time::Duration;

use lapin::types::{parsing::parse_field_table, FieldTable};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::Broker;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Class and method ids (class, method).
pub mod m {
    pub const CONNECTION_START: (u16, u16) = (10, 10);
    pub const CONNECTION_START_OK: (u16, u16) = (10, 11);
    pub const CONNECTION_TUNE: (u16, u16) = (10, 30);
    pub const CONNECTION_TUNE_OK: (u16, u16) = (10, 31);
    pub const CONNECTION_OPEN: (u16, u16) = (10, 40);
    pub const CONNECTION_OPEN_OK: (u16, u16) = (10, 41);
    pub const CONNECTION_CLOSE: (u16, u16) = (10, 50);
    pub const CONNECTION_CLOSE_OK: (u16, u16) = (10, 51);
    pub const CHANNEL_OPEN: (u16, u16) = (20, 10);
    pub const CHANNEL_OPEN_OK: (u16, u16) = (20, 11);
    pub const CHANNEL_CLOSE: (u16, u16) = (20, 40);
    pub const CHANNEL_CLOSE_OK: (u16, u16) = (20, 41);
    pub const QUEUE_DECLARE: (u16, u16) = (50, 10);
    pub const QUEUE_DECLARE_OK: (u16, u16) = (50, 11);
    pub const BASIC_PUBLISH: (u16, u16) = (60, 40);
    pub const BASIC_GET: (u16, u16) = (60, 70);
    pub const BASIC_GET_OK: (u16, u16) = (60, 71);
    pub const BASIC_GET_EMPTY: (u16, u16) = (60, 72);
}

/// One frame as read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub typ: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl Frame {
    /// `(class, method)` if this is a method frame.
    pub fn method_id(&self) -> Option<(u16, u16)> {
        if self.typ == FRAME_METHOD && self.payload.len() >= 4 {
            let class = u16::from_be_bytes([self.payload[0], self.payload[1]]);
            let method = u16::from_be_bytes([self.payload[2], self.payload[3]]);
            Some((class, method))
        } else {
            None
        }
    }

    pub fn is(&self, id: (u16, u16)) -> bool {
        self.method_id() == Some(id)
    }

    /// Reader over the method arguments (after class/method ids).
    pub fn args(&self) -> Reader<'_> {
        assert_eq!(self.typ, FRAME_METHOD, "not a method frame: {self:?}");
        Reader {
            buf: &self.payload[4..],
            pos: 0,
        }
    }

    /// Total size on the wire (7-byte header + payload + frame-end).
    pub fn wire_size(&self) -> usize {
        self.payload.len() + 8
    }
}

/// Parsed connection.close / channel.close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl Close {
    pub fn parse(frame: &Frame) -> Close {
        let mut r = frame.args();
        Close {
            code: r.u16(),
            text: r.shortstr(),
            class_id: r.u16(),
            method_id: r.u16(),
        }
    }
}

/// Values from connection.tune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tune {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

/// Values from connection.start.
#[derive(Clone, Debug)]
pub struct Start {
    pub version_major: u8,
    pub version_minor: u8,
    pub server_properties: FieldTable,
    pub mechanisms: String,
    pub locales: String,
}

/// Cursor for decoding method arguments.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(self.pos + n <= self.buf.len(), "method arguments truncated");
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    pub fn shortstr(&mut self) -> String {
        let n = self.u8() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    pub fn longstr(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        self.take(n).to_vec()
    }
    pub fn table(&mut self) -> FieldTable {
        let rest = &self.buf[self.pos..];
        let (remaining, table) = parse_field_table(rest).expect("field table parses");
        self.pos += rest.len() - remaining.len();
        table
    }
}

/// Builder for method arguments.
#[derive(Default, Clone)]
pub struct Args(Vec<u8>);

impl Args {
    pub fn new() -> Args {
        Args::default()
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn shortstr(mut self, s: &str) -> Self {
        assert!(s.len() < 256);
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn longstr(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
    /// Packed bits, first flag in the lowest bit.
    pub fn bits(mut self, flags: &[bool]) -> Self {
        for chunk in flags.chunks(8) {
            let mut b = 0u8;
            for (i, f) in chunk.iter().enumerate() {
                if *f {
                    b |= 1 << i;
                }
            }
            self.0.push(b);
        }
        self
    }
    /// An empty field table.
    pub fn empty_table(self) -> Self {
        self.u32(0)
    }
    /// A table of `name -> bool` entries.
    pub fn bool_table(mut self, entries: &[(&str, bool)]) -> Self {
        let mut t = Vec::new();
        for (k, v) in entries {
            t.push(k.len() as u8);
            t.extend_from_slice(k.as_bytes());
            t.push(b't');
            t.push(*v as u8);
        }
        self.0.extend_from_slice(&(t.len() as u32).to_be_bytes());
        self.0.extend_from_slice(&t);
        self
    }
    /// A table with one nested table entry `name -> {bool entries}`.
    pub fn nested_bool_table(mut self, name: &str, entries: &[(&str, bool)]) -> Self {
        let inner = Args::new().bool_table(entries).0;
        let mut t = Vec::new();
        t.push(name.len() as u8);
        t.extend_from_slice(name.as_bytes());
        t.push(b'F');
        t.extend_from_slice(&inner);
        self.0.extend_from_slice(&(t.len() as u32).to_be_bytes());
        self.0.extend_from_slice(&t);
        self
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// Encode a whole frame.
pub fn frame(typ: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.push(typ);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(FRAME_END);
    v
}

/// Encode a method frame.
pub fn method_frame(channel: u16, id: (u16, u16), args: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(args.len() + 4);
    p.extend_from_slice(&id.0.to_be_bytes());
    p.extend_from_slice(&id.1.to_be_bytes());
    p.extend_from_slice(args);
    frame(FRAME_METHOD, channel, &p)
}

/// Encode a basic content header frame with no properties.
pub fn header_frame(channel: u16, body_size: u64) -> Vec<u8> {
    let p = Args::new().u16(60).u16(0).u64(body_size).u16(0).build();
    frame(FRAME_HEADER, channel, &p)
}

/// What happened when reading from the socket.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    /// The peer closed (or reset) the connection.
    Eof,
    Timeout,
}

/// A raw AMQP connection.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Values the client sent in tune-ok (after [`RawConn::handshake`]).
    pub tune: Tune,
    /// What the server proposed in connection.tune.
    pub server_tune: Tune,
}

impl RawConn {
    /// Open a TCP connection (no bytes sent).
    pub async fn connect(broker: &Broker) -> RawConn {
        let stream = TcpStream::connect(broker.addr())
            .await
            .expect("tcp connect");
        stream.set_nodelay(true).ok();
        let zero = Tune {
            channel_max: 0,
            frame_max: 0,
            heartbeat: 0,
        };
        RawConn {
            stream,
            buf: Vec::new(),
            tune: zero,
            server_tune: zero,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to broker");
    }

    /// Like [`RawConn::send`] but tolerates the server having closed already.
    pub async fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    pub async fn send_method(&mut self, channel: u16, id: (u16, u16), args: Vec<u8>) {
        self.send(&method_frame(channel, id, &args)).await;
    }

    async fn fill(&mut self, want: usize, deadline: tokio::time::Instant) -> Result<(), Read> {
        while self.buf.len() < want {
            self.buf.reserve(65536);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(Read::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Read::Eof),
                Ok(Ok(_)) => {}
            }
        }
        Ok(())
    }

    /// Read exactly `n` raw bytes (or less if the peer closes); `secs` limit.
    pub async fn read_bytes(&mut self, n: usize, secs: u64) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let _ = self.fill(n, deadline).await;
        let n = n.min(self.buf.len());
        self.buf.drain(..n).collect()
    }

    /// Read one frame, waiting at most `secs`.
    pub async fn read_frame(&mut self, secs: u64) -> Read {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        if let Err(r) = self.fill(7, deadline).await {
            return r;
        }
        let size = u32::from_be_bytes(self.buf[3..7].try_into().unwrap()) as usize;
        assert!(
            size < 64 << 20,
            "absurd frame size {size} from server: {:?}",
            &self.buf[..7]
        );
        if let Err(r) = self.fill(7 + size + 1, deadline).await {
            return r;
        }
        let typ = self.buf[0];
        let channel = u16::from_be_bytes([self.buf[1], self.buf[2]]);
        assert_eq!(
            self.buf[7 + size],
            FRAME_END,
            "server sent a frame with a bad frame-end octet"
        );
        let payload = self.buf[7..7 + size].to_vec();
        self.buf.drain(..7 + size + 1);
        Read::Frame(Frame {
            typ,
            channel,
            payload,
        })
    }

    /// Next non-heartbeat frame; panics on EOF/timeout.
    pub async fn next_frame(&mut self) -> Frame {
        loop {
            match self.read_frame(10).await {
                Read::Frame(f) if f.typ == FRAME_HEARTBEAT => continue,
                Read::Frame(f) => return f,
                other => panic!("expected a frame from the server, got {other:?}"),
            }
        }
    }

    /// Next non-heartbeat frame must be the given method.
    pub async fn expect_method(&mut self, channel: u16, id: (u16, u16)) -> Frame {
        let f = self.next_frame().await;
        if f.is(m::CONNECTION_CLOSE) && id != m::CONNECTION_CLOSE {
            panic!(
                "expected method {id:?} on channel {channel}, server closed the connection: {:?}",
                Close::parse(&f)
            );
        }
        if f.is(m::CHANNEL_CLOSE) && id != m::CHANNEL_CLOSE {
            panic!(
                "expected method {id:?} on channel {channel}, server closed the channel: {:?}",
                Close::parse(&f)
            );
        }
        assert_eq!(f.method_id(), Some(id), "unexpected frame {f:?}");
        assert_eq!(f.channel, channel, "method {id:?} on the wrong channel");
        f
    }

    /// Send the protocol header and read connection.start.
    pub async fn start(&mut self) -> Start {
        self.send(PROTOCOL_HEADER).await;
        let f = self.expect_method(0, m::CONNECTION_START).await;
        let mut r = f.args();
        Start {
            version_major: r.u8(),
            version_minor: r.u8(),
            server_properties: r.table(),
            mechanisms: String::from_utf8_lossy(&r.longstr()).into_owned(),
            locales: String::from_utf8_lossy(&r.longstr()).into_owned(),
        }
    }

    /// Send start-ok with PLAIN credentials and the
    /// `authentication_failure_close` client capability.
    pub async fn start_ok(&mut self, user: &str, password: &str) {
        let mut response = vec![0u8];
        response.extend_from_slice(user.as_bytes());
        response.push(0);
        response.extend_from_slice(password.as_bytes());
        let args = Args::new()
            .nested_bool_table("capabilities", &[("authentication_failure_close", true)])
            .shortstr("PLAIN")
            .longstr(&response)
            .shortstr("en_US")
            .build();
        self.send_method(0, m::CONNECTION_START_OK, args).await;
    }

    /// Read connection.tune.
    pub async fn read_tune(&mut self) -> Tune {
        let f = self.expect_method(0, m::CONNECTION_TUNE).await;
        let mut r = f.args();
        let t = Tune {
            channel_max: r.u16(),
            frame_max: r.u32(),
            heartbeat: r.u16(),
        };
        self.server_tune = t;
        t
    }

    pub async fn tune_ok(&mut self, t: Tune) {
        self.tune = t;
        let args = Args::new()
            .u16(t.channel_max)
            .u32(t.frame_max)
            .u16(t.heartbeat)
            .build();
        self.send_method(0, m::CONNECTION_TUNE_OK, args).await;
    }

    pub async fn open(&mut self, vhost: &str) {
        let args = Args::new()
            .shortstr(vhost)
            .shortstr("")
            .bits(&[false])
            .build();
        self.send_method(0, m::CONNECTION_OPEN, args).await;
    }

    /// Full handshake accepting the server's tune values but without
    /// heartbeats.
    pub async fn handshake(broker: &Broker) -> RawConn {
        Self::handshake_with(broker, |t| Tune { heartbeat: 0, ..t }).await
    }

    /// Full handshake; `tune` maps the server's proposal to the tune-ok.
    pub async fn handshake_with(broker: &Broker, tune: impl FnOnce(Tune) -> Tune) -> RawConn {
        let mut c = RawConn::connect(broker).await;
        c.start().await;
        c.start_ok(broker.username(), broker.password()).await;
        let server = c.read_tune().await;
        c.tune_ok(tune(server)).await;
        c.open(broker.vhost()).await;
        c.expect_method(0, m::CONNECTION_OPEN_OK).await;
        c
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(channel, m::CHANNEL_OPEN, Args::new().shortstr("").build())
            .await;
        self.expect_method(channel, m::CHANNEL_OPEN_OK).await;
    }

    /// Declare a non-durable, exclusive queue on `channel` and wait for
    /// declare-ok.
    pub async fn declare_exclusive_queue(&mut self, channel: u16, name: &str) {
        // reserved-1, queue, passive, durable, exclusive, auto-delete, no-wait, args
        let args = Args::new()
            .u16(0)
            .shortstr(name)
            .bits(&[false, false, true, false, false])
            .empty_table()
            .build();
        self.send_method(channel, m::QUEUE_DECLARE, args).await;
        self.expect_method(channel, m::QUEUE_DECLARE_OK).await;
    }

    /// basic.publish method frame bytes (default exchange).
    pub fn publish_frame(channel: u16, routing_key: &str) -> Vec<u8> {
        let args = Args::new()
            .u16(0)
            .shortstr("")
            .shortstr(routing_key)
            .bits(&[false, false])
            .build();
        method_frame(channel, m::BASIC_PUBLISH, &args)
    }

    /// Wait for connection.close (skipping other frames), check the code,
    /// answer close-ok and check the server then closes the socket.
    pub async fn expect_connection_close(&mut self, code: u16) -> Close {
        self.expect_connection_close_in(&[code]).await
    }

    /// Like [`RawConn::expect_connection_close`], accepting any of `codes`.
    pub async fn expect_connection_close_in(&mut self, codes: &[u16]) -> Close {
        let close = loop {
            match self.read_frame(10).await {
                Read::Frame(f) if f.is(m::CONNECTION_CLOSE) => break Close::parse(&f),
                Read::Frame(_) => continue,
                other => panic!("expected connection.close {codes:?}, got {other:?}"),
            }
        };
        assert!(
            codes.contains(&close.code),
            "connection.close code {} not in {codes:?} (text: {:?})",
            close.code,
            close.text
        );
        self.send_lossy(&method_frame(0, m::CONNECTION_CLOSE_OK, &[]))
            .await;
        self.expect_eof(5).await;
        close
    }

    /// For handshake failures before connection.open-ok: the server must
    /// close the socket. RabbitMQ sends nothing (it closes silently after a
    /// delay); a server that sends connection.close first must use `code`.
    pub async fn expect_handshake_rejected(&mut self, code: u16, secs: u64) -> Option<Close> {
        self.expect_disconnect(&[code], secs).await
    }

    /// The server must close the socket within `secs`, either silently or
    /// after a connection.close whose code is one of `codes` (answered with
    /// close-ok).
    pub async fn expect_disconnect(&mut self, codes: &[u16], secs: u64) -> Option<Close> {
        loop {
            match self.read_frame(secs).await {
                Read::Eof => return None,
                Read::Frame(f) if f.is(m::CONNECTION_CLOSE) => {
                    let close = Close::parse(&f);
                    assert!(
                        codes.contains(&close.code),
                        "connection.close code {} not in {codes:?} (text: {:?})",
                        close.code,
                        close.text
                    );
                    self.send_lossy(&method_frame(0, m::CONNECTION_CLOSE_OK, &[]))
                        .await;
                    self.expect_eof(5).await;
                    return Some(close);
                }
                Read::Frame(f) if f.typ == FRAME_HEARTBEAT => continue,
                Read::Frame(f) => panic!("expected the server to drop the connection, got {f:?}"),
                Read::Timeout => panic!(
                    "server neither closed the socket nor sent connection.close within {secs}s"
                ),
            }
        }
    }

    /// Wait for channel.close on `channel`, check the code, answer close-ok.
    pub async fn expect_channel_close(&mut self, channel: u16, code: u16) -> Close {
        let f = self.next_frame().await;
        if f.is(m::CONNECTION_CLOSE) {
            panic!(
                "expected channel.close {code}, got connection.close {:?}",
                Close::parse(&f)
            );
        }
        assert!(f.is(m::CHANNEL_CLOSE), "expected channel.close, got {f:?}");
        assert_eq!(f.channel, channel);
        let close = Close::parse(&f);
        assert_eq!(
            close.code, code,
            "channel.close code (text: {:?})",
            close.text
        );
        self.send_method(channel, m::CHANNEL_CLOSE_OK, vec![]).await;
        close
    }

    /// Close our sending side (TCP FIN), as a client does once it has its
    /// close-ok; we can still read.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Read until the server closes the socket, within `secs`, collecting the
    /// frames it sends. A reset (ECONNRESET) instead of a clean close is an
    /// error: it means the server dropped the socket with our bytes unread.
    pub async fn frames_until_eof(&mut self, secs: u64) -> std::io::Result<Vec<Frame>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            self.buf.reserve(65536);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("server did not close the socket within {secs}s"),
                    ))
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(0)) => break,
                Ok(Ok(_)) => {}
            }
        }
        let mut frames = Vec::new();
        while let Read::Frame(f) = self.read_frame(1).await {
            frames.push(f);
        }
        Ok(frames)
    }

    /// Whether the server keeps the socket open (sends nothing but heartbeats
    /// and does not close it) for `millis`.
    pub async fn stays_open(&mut self, millis: u64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(millis);
        let mut scratch = [0u8; 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Err(_) => return true,
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(n)) => self.buf.extend_from_slice(&scratch[..n]),
            }
        }
    }

    /// Write `bytes`, returning the error instead of panicking.
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The server must close the socket within `secs` (frames before that
    /// other than heartbeats and connection.close fail the test).
    pub async fn expect_eof(&mut self, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left.as_secs().max(1)).await {
                Read::Eof => return,
                Read::Frame(f) if f.typ == FRAME_HEARTBEAT || f.is(m::CONNECTION_CLOSE_OK) => {
                    continue
                }
                Read::Frame(f) => {
                    panic!("expected the server to close the socket, got frame {f:?}")
                }
                Read::Timeout => panic!("server did not close the socket within {secs}s"),
            }
        }
    }
}
