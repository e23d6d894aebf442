//! A minimal AMQP 0-9-1 client on Warren's own codec, built for measuring.
//!
//! General-purpose clients (lapin, pika) spend more per message than a fast
//! broker does, so with them a benchmark measures the client. This one does only
//! what the load generator needs: PLAIN login, channels, a handful of synchronous
//! methods, and direct access to the socket halves so the producer and consumer
//! loops can batch. Everything outbound is appended to one buffer ([`out`]) and
//! written with one syscall; inbound frames come from a `FramedRead` over
//! [`FrameDecoder`], which hands out bodies as slices of the read buffer.
//!
//! Heartbeats are switched off at tune time (`heartbeat = 0` in tune-ok, which
//! both RabbitMQ and Warren honour): runs are short and an idle-connection
//! measurement should not include heartbeat traffic.
//!
//! [`out`]: Connection::out

use crate::tls::{ReadHalf, WriteHalf};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::fmt;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;
use warren_amqp::codec::{
    write_method, BasicConsume, BasicQos, ChannelCloseOk, ChannelOpen, ConnectionClose,
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, ExchangeDeclare,
    ExchangeDelete, Frame, FrameDecoder, FrameError, Method, QueueBind, QueueDeclare, QueueDelete,
    FRAME_MIN_SIZE, PROTOCOL_HEADER,
};
use warren_core::{FieldTable, FieldValue, ShortStr};

use crate::net::{self, HANDSHAKE_TIMEOUT, IO_BUFFER};
use crate::uri::AmqpUri;
use crate::wire::{self, Parts, Wire};

/// Largest frame we accept and propose; the broker may lower it.
const CLIENT_FRAME_MAX: u32 = 131_072;
/// Buffers of a connection that only logs in and out: room for the handshake.
const SMALL_BUFFER: usize = 4096;

/// Why a client operation failed.
#[derive(Debug)]
pub enum Error {
    Io(std::io::Error),
    /// The broker closed the connection (connection.close), or a channel
    /// (channel.close), with this code and text.
    Closed {
        what: &'static str,
        code: u16,
        text: String,
    },
    /// Something else went wrong (unexpected frame, timeout, bad configuration).
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Closed { what, code, text } => {
                write!(f, "broker closed the {what}: {code} {text}")
            }
            Error::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        if e.is_io() {
            Error::Other(format!("connection lost: {}", e.text))
        } else {
            Error::Other(format!("bad frame from broker: {e}"))
        }
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Other(s)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One client connection. The fields are public within the crate so the hot
/// loops can borrow the reader, writer and buffer separately (e.g. a `select!`
/// over reading confirms and writing publishes).
pub struct Connection {
    pub(crate) reader: FramedRead<ReadHalf, FrameDecoder>,
    pub(crate) writer: WriteHalf,
    /// Frames waiting to be written.
    pub(crate) out: BytesMut,
    /// Negotiated frame size limit (framing included).
    pub frame_max: u32,
    pub channel_max: u16,
}

impl Connection {
    /// Connect, log in with PLAIN and open the URI's vhost.
    pub async fn open(uri: &AmqpUri) -> Result<Connection> {
        let what = format!("connecting to {uri}");
        let split = net::connect_split(uri);
        net::with_timeout(
            what,
            HANDSHAKE_TIMEOUT,
            Self::open_inner(uri, split, IO_BUFFER),
        )
        .await
    }

    /// [`open`](Self::open) from source address number `slot % spread` (see
    /// [`net::connect_from`]), with small buffers: for connections that only
    /// log in and close (the churn scenario), where 64 KiB of buffers per
    /// cycle would cost the load generator more than the broker.
    pub async fn open_from(uri: &AmqpUri, slot: usize, spread: u8) -> Result<Connection> {
        let what = format!("connecting to {uri}");
        let split = async {
            let tcp = net::connect_from(uri, slot, spread).await?;
            crate::tls::split(tcp, uri.tls, &uri.host).await
        };
        net::with_timeout(
            what,
            HANDSHAKE_TIMEOUT,
            Self::open_inner(uri, split, SMALL_BUFFER),
        )
        .await
    }

    async fn open_inner(
        uri: &AmqpUri,
        split: impl std::future::Future<Output = Result<(ReadHalf, WriteHalf)>>,
        buffer: usize,
    ) -> Result<Connection> {
        let (rd, wr) = split.await?;
        let mut conn = Connection {
            reader: FramedRead::with_capacity(rd, FrameDecoder::new(FRAME_MIN_SIZE), buffer),
            writer: wr,
            out: BytesMut::with_capacity(buffer),
            frame_max: FRAME_MIN_SIZE,
            channel_max: 0,
        };
        conn.writer.write_all(PROTOCOL_HEADER).await?;

        let start = match conn.expect_method(0).await? {
            Method::ConnectionStart(s) => s,
            other => return Err(unexpected("connection.start", &other)),
        };
        if !String::from_utf8_lossy(&start.mechanisms)
            .split(' ')
            .any(|m| m == "PLAIN")
        {
            return Err(Error::Other(format!(
                "broker does not offer PLAIN authentication (offers {:?})",
                String::from_utf8_lossy(&start.mechanisms)
            )));
        }
        let mut response = Vec::with_capacity(2 + uri.user.len() + uri.password.len());
        response.push(0);
        response.extend_from_slice(uri.user.as_bytes());
        response.push(0);
        response.extend_from_slice(uri.password.as_bytes());
        conn.send(
            0,
            &Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: client_properties(),
                mechanism: ShortStr::from_static("PLAIN"),
                response: Bytes::from(response),
                locale: ShortStr::from_static("en_US"),
            }),
        );
        conn.flush().await?;

        let tune = match conn.expect_method(0).await? {
            Method::ConnectionTune(t) => t,
            other => return Err(unexpected("connection.tune", &other)),
        };
        let frame_max = match tune.frame_max {
            0 => CLIENT_FRAME_MAX,
            n => n.min(CLIENT_FRAME_MAX),
        };
        let channel_max = match tune.channel_max {
            0 => 2047,
            n => n,
        };
        conn.send(
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max,
                frame_max,
                heartbeat: 0,
            }),
        );
        conn.frame_max = frame_max;
        conn.channel_max = channel_max;
        conn.reader.decoder_mut().set_max_frame_size(frame_max);
        conn.send(
            0,
            &Method::ConnectionOpen(ConnectionOpen {
                virtual_host: ShortStr::from(uri.vhost.as_str()),
                ..Default::default()
            }),
        );
        conn.flush().await?;
        match conn.expect_method(0).await? {
            Method::ConnectionOpenOk(_) => Ok(conn),
            other => Err(unexpected("connection.open-ok", &other)),
        }
    }

    /// Append a method frame to the output buffer (not written until
    /// [`flush`](Self::flush)).
    pub fn send(&mut self, channel: u16, method: &Method) {
        write_method(&mut self.out, channel, method);
    }

    /// Append a method with content (basic.publish + header + body frames).
    pub fn send_content(&mut self, channel: u16, method: &Method, properties: &[u8], body: &[u8]) {
        write_method(&mut self.out, channel, method);
        warren_amqp::codec::write_content(
            &mut self.out,
            channel,
            60,
            properties,
            body,
            self.frame_max,
        );
    }

    /// Write everything buffered.
    pub async fn flush(&mut self) -> Result<()> {
        wire::flush(&mut self.writer, &mut self.out).await
    }

    /// The next frame, skipping heartbeats. A connection.close from the broker is
    /// answered and returned as [`Error::Closed`]; a channel.close is answered
    /// and returned as [`Error::Closed`] too, since no run survives losing a
    /// channel.
    pub async fn recv(&mut self) -> Result<Frame> {
        loop {
            let frame = wire::or_closed(self.reader.next().await)?;
            if let Some(f) = self.filter(frame).await? {
                return Ok(f);
            }
        }
    }

    /// A frame if one can be had without waiting. Used to drain what already
    /// arrived before deciding whether to write (batching).
    pub fn try_recv(&mut self) -> Option<Result<Frame>> {
        wire::try_next(&mut self.reader)
    }

    /// Handle connection-level frames (heartbeats, blocked/unblocked, closes);
    /// returns the frame if the caller should see it. The hot loops pass what
    /// they read through this too, so a close is never mistaken for data.
    pub(crate) async fn filter(&mut self, frame: Frame) -> Result<Option<Frame>> {
        match frame {
            Frame::Heartbeat(_) => Ok(None),
            Frame::Method(_, Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_)) => {
                Ok(None)
            }
            Frame::Method(0, Method::ConnectionClose(c)) => {
                self.send(0, &Method::ConnectionCloseOk(ConnectionCloseOk {}));
                let _ = self.flush().await;
                Err(Error::Closed {
                    what: "connection",
                    code: c.reply_code,
                    text: c.reply_text.to_string(),
                })
            }
            Frame::Method(ch, Method::ChannelClose(c)) => {
                self.send(ch, &Method::ChannelCloseOk(ChannelCloseOk {}));
                let _ = self.flush().await;
                Err(Error::Closed {
                    what: "channel",
                    code: c.reply_code,
                    text: c.reply_text.to_string(),
                })
            }
            f => Ok(Some(f)),
        }
    }

    /// The next frame must be a method on `channel` (nothing in this crate
    /// interleaves deliveries or confirms with synchronous methods).
    async fn expect_method(&mut self, channel: u16) -> Result<Method> {
        match self.recv().await? {
            Frame::Method(ch, m) if ch == channel => Ok(m),
            Frame::Method(0, m) => Err(unexpected("a reply", &m)),
            other => Err(Error::Other(format!(
                "unexpected frame while waiting for a reply on channel {channel}: {other:?}"
            ))),
        }
    }

    /// Send a synchronous method and wait for its reply on the same channel.
    pub async fn rpc(&mut self, channel: u16, method: Method) -> Result<Method> {
        self.send(channel, &method);
        self.flush().await?;
        self.expect_method(channel).await
    }

    pub async fn open_channel(&mut self, channel: u16) -> Result<()> {
        match self
            .rpc(channel, Method::ChannelOpen(ChannelOpen::default()))
            .await?
        {
            Method::ChannelOpenOk(_) => Ok(()),
            other => Err(unexpected("channel.open-ok", &other)),
        }
    }

    /// Close politely: connection.close, then wait (briefly) for close-ok so the
    /// broker has released the connection before the next measurement starts.
    pub async fn close(mut self) -> Result<()> {
        self.send(
            0,
            &Method::ConnectionClose(ConnectionClose {
                reply_code: 200,
                reply_text: ShortStr::from_static("bye"),
                class_id: 0,
                method_id: 0,
            }),
        );
        self.flush().await?;
        let acked = |f: &Frame| matches!(f, Frame::Method(0, Method::ConnectionCloseOk(_)));
        wire::await_close(&mut self.reader, acked).await;
        Ok(())
    }
}

impl Wire for Connection {
    type Codec = FrameDecoder;

    fn wire(&mut self) -> Parts<'_, FrameDecoder> {
        (&mut self.reader, &mut self.writer, &mut self.out)
    }
}

fn unexpected(wanted: &str, got: &Method) -> Error {
    Error::Other(format!("expected {wanted}, got {got:?}"))
}

fn client_properties() -> FieldTable {
    let mut caps = FieldTable::new();
    for c in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
    ] {
        caps.insert(c, FieldValue::Bool(true));
    }
    let mut t = FieldTable::new();
    t.insert("product", FieldValue::string("warren-perf"));
    t.insert("version", FieldValue::string(env!("CARGO_PKG_VERSION")));
    t.insert("platform", FieldValue::string("Rust"));
    t.insert("capabilities", FieldValue::Table(caps));
    t
}

/// Queue declaration with the flags the scenarios use.
pub fn queue_declare(name: &str, durable: bool, exclusive: bool, auto_delete: bool) -> Method {
    Method::QueueDeclare(QueueDeclare {
        queue: ShortStr::from(name),
        durable,
        exclusive,
        auto_delete,
        ..Default::default()
    })
}

/// Durable queue declaration with an `x-queue-type` (quorum queues).
pub fn queue_declare_typed(name: &str, queue_type: &str) -> Method {
    let mut arguments = FieldTable::new();
    arguments.insert("x-queue-type", FieldValue::string(queue_type));
    Method::QueueDeclare(QueueDeclare {
        queue: ShortStr::from(name),
        durable: true,
        arguments,
        ..Default::default()
    })
}

/// Passive declare: does the queue exist, and how many messages are ready.
pub fn queue_declare_passive(name: &str) -> Method {
    Method::QueueDeclare(QueueDeclare {
        queue: ShortStr::from(name),
        passive: true,
        ..Default::default()
    })
}

pub fn exchange_declare(name: &str, kind: &str, durable: bool, auto_delete: bool) -> Method {
    Method::ExchangeDeclare(ExchangeDeclare {
        exchange: ShortStr::from(name),
        kind: ShortStr::from(kind),
        durable,
        auto_delete,
        ..Default::default()
    })
}

pub fn queue_bind(queue: &str, exchange: &str, key: &str) -> Method {
    Method::QueueBind(QueueBind {
        queue: ShortStr::from(queue),
        exchange: ShortStr::from(exchange),
        routing_key: ShortStr::from(key),
        ..Default::default()
    })
}

pub fn queue_delete(name: &str) -> Method {
    Method::QueueDelete(QueueDelete {
        queue: ShortStr::from(name),
        ..Default::default()
    })
}

pub fn exchange_delete(name: &str) -> Method {
    Method::ExchangeDelete(ExchangeDelete {
        exchange: ShortStr::from(name),
        ..Default::default()
    })
}

pub fn basic_qos(prefetch: u16) -> Method {
    Method::BasicQos(BasicQos {
        prefetch_count: prefetch,
        ..Default::default()
    })
}

pub fn basic_consume(queue: &str, tag: &str, no_ack: bool) -> Method {
    Method::BasicConsume(BasicConsume {
        queue: ShortStr::from(queue),
        consumer_tag: ShortStr::from(tag),
        no_ack,
        ..Default::default()
    })
}
