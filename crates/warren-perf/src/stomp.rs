//! The throughput scenario over STOMP 1.2 (`--protocol stomp`).
//!
//! Same shape as the AMQP run, so that the two are comparable: producers SEND
//! to `/queue/NAME` (queue i mod --queues), consumers SUBSCRIBE to the queue
//! with `prefetch-count` (--prefetch) and the ack mode of --stomp-ack, bodies
//! are the 16-byte stamp padded to --size, and the run is driven, checked and
//! reported by [`crate::throughput`] exactly as the AMQP one.
//!
//! * `client` acks are cumulative (the STOMP twin of `basic.ack` with
//!   `multiple`): one ACK every --multi-ack-every messages (capped at the
//!   prefetch), with the `ack` id of the last one. `client-individual` acks
//!   every message; `auto` none.
//! * `--confirm N`: every SEND asks for a receipt; at most N are outstanding
//!   (the analogue of publisher confirms; both RabbitMQ and Warren answer a
//!   SEND's receipt once the message is safely routed, or stored if durable).
//! * The queues are declared by the first SUBSCRIBE (and by each producer's
//!   first SEND) as `auto-delete:true`, `exclusive:false`, `durable` only with
//!   --persistent: they go away with the run's last subscriber, since STOMP
//!   cannot delete a queue.
//!
//! The client is built for speed like the AMQP one: one `FramedRead` over
//! warren-stomp's decoder per connection ([`Config::client`]: every frame's
//! `content-length` is honoured, so bodies may hold NULs), SENDs copied from a
//! pre-encoded template with only the stamp (and receipt id) patched, and
//! everything written in batches with one syscall.

use crate::tls::{ReadHalf, WriteHalf};
use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use warren_stomp::{Command, Config, DecodeError, Frame, Item, StompCodec, StompDecoder};
use warren_stomp::{StompEncoder, Version};

use crate::client::{Error, Result};
use crate::consume::{ack_every, consume, Consume};
use crate::load::{ConsumerOutcome, ProducerOutcome, Recorder, Shared};
use crate::net::{self, HANDSHAKE_TIMEOUT, IO_BUFFER};
use crate::produce::{publish, Publish, Publishing};
use crate::seq::{write_stamp, ConfirmWindow, Stamp, STAMP_LEN};
use crate::throughput::{self, ConsumerTask, ProducerTask, ThroughputReport};
use crate::uri::AmqpUri;
use crate::wire::{self, Parts, Wire};
use crate::{ExchangeType, Names, PerfArgs, StompAck};

/// Receipt ids are sequence number + 1 in this many zero-padded decimal
/// digits, so the SEND template can be patched in place (2^48 < 10^15).
const RECEIPT_DIGITS: usize = 15;

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Io(e) => Error::Other(format!("connection lost: {e}")),
            e => Error::Other(format!("bad STOMP frame from broker: {e}")),
        }
    }
}

/// An ERROR frame as an error: its `message` header and body.
fn broker_error(frame: &Frame) -> Error {
    let message = String::from_utf8_lossy(frame.header("message").unwrap_or(b"(no message)"));
    let body = String::from_utf8_lossy(&frame.body);
    let body = body.trim();
    if body.is_empty() {
        Error::Other(format!("STOMP ERROR from broker: {message}"))
    } else {
        Error::Other(format!("STOMP ERROR from broker: {message}: {body}"))
    }
}

fn unexpected(what: &str, frame: &Frame) -> Error {
    Error::Other(format!("unexpected STOMP {} frame {what}", frame.command))
}

/// One STOMP 1.2 client connection. As in [`crate::client::Connection`], the
/// halves and the output buffer are separate fields so the hot loops can read
/// and write in one `select!`.
pub struct StompConnection {
    reader: FramedRead<ReadHalf, StompDecoder>,
    writer: WriteHalf,
    /// Frames waiting to be written.
    out: BytesMut,
    encoder: StompEncoder,
}

impl StompConnection {
    /// Connect and log in (CONNECT with `accept-version:1.2`, the URI's vhost as
    /// `host`, heart-beats off).
    pub async fn open(uri: &AmqpUri) -> Result<StompConnection> {
        let what = format!("connecting to {uri}");
        net::with_timeout(what, HANDSHAKE_TIMEOUT, Self::open_inner(uri)).await
    }

    async fn open_inner(uri: &AmqpUri) -> Result<StompConnection> {
        let (rd, wr) = net::connect_split(uri).await?;
        let (decoder, encoder) = StompCodec::new(Config::client()).into_parts();
        let mut conn = StompConnection {
            reader: FramedRead::with_capacity(rd, decoder, IO_BUFFER),
            writer: wr,
            out: BytesMut::with_capacity(IO_BUFFER),
            encoder,
        };
        conn.frame(&Command::Connect, &connect_headers(uri, b"0,0"));
        conn.flush().await?;
        let frame = conn.recv().await?;
        if frame.command != Command::Connected {
            return Err(unexpected("instead of CONNECTED", &frame));
        }
        check_version(&frame)?;
        conn.reader.decoder_mut().set_version(Version::V1_2);
        conn.encoder.set_version(Version::V1_2);
        Ok(conn)
    }

    /// Append a frame without body to the output buffer.
    pub fn frame(&mut self, command: &Command, headers: &[(&[u8], &[u8])]) {
        let hint = 16
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum::<usize>();
        let mut w = self.encoder.writer(&mut self.out, command, hint);
        for (n, v) in headers {
            w.header(n, v);
        }
        w.finish(b"");
    }

    /// Write everything buffered.
    pub async fn flush(&mut self) -> Result<()> {
        wire::flush(&mut self.writer, &mut self.out).await
    }

    /// The next frame (heart-beats skipped); an ERROR frame is an error.
    pub async fn recv(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = check(wire::or_closed(self.reader.next().await)?)? {
                return Ok(f);
            }
        }
    }

    /// DISCONNECT with a receipt, and wait (briefly) for it so the broker has
    /// released the connection before the next measurement starts.
    pub async fn close(mut self) -> Result<()> {
        self.frame(&Command::Disconnect, &[(b"receipt", b"warren-perf-bye")]);
        self.flush().await?;
        let acked = |i: &Item| matches!(i, Item::Frame(f) if f.command == Command::Receipt);
        wire::await_close(&mut self.reader, acked).await;
        Ok(())
    }
}

impl Wire for StompConnection {
    type Codec = StompDecoder;

    fn wire(&mut self) -> Parts<'_, StompDecoder> {
        (&mut self.reader, &mut self.writer, &mut self.out)
    }
}

/// Frames pass, heart-beats are dropped, ERROR frames become errors.
pub(crate) fn check(item: Item) -> Result<Option<Frame>> {
    match item {
        Item::Heartbeat => Ok(None),
        Item::Frame(f) if f.command == Command::Error => Err(broker_error(&f)),
        Item::Frame(f) => Ok(Some(f)),
    }
}

/// CONNECT's headers, for a STOMP 1.2 login as `creds` (its vhost as `host`)
/// over TCP and over WebSocket alike.
pub(crate) fn connect_headers<'a>(
    creds: &'a AmqpUri,
    heart_beat: &'a [u8],
) -> [(&'static [u8], &'a [u8]); 5] {
    [
        (b"accept-version", b"1.2"),
        (b"host", creds.vhost.as_bytes()),
        (b"login", creds.user.as_bytes()),
        (b"passcode", creds.password.as_bytes()),
        (b"heart-beat", heart_beat),
    ]
}

/// The CONNECTED frame must settle on STOMP 1.2 (what the codec speaks).
pub(crate) fn check_version(connected: &Frame) -> Result<()> {
    match connected.header("version") {
        Some(b"1.2") => Ok(()),
        v => Err(Error::Other(format!(
            "broker negotiated STOMP {}, warren perf needs 1.2",
            String::from_utf8_lossy(v.unwrap_or(b"1.0"))
        ))),
    }
}

/// The queue-declaring headers every SUBSCRIBE and each producer's first SEND
/// carry (they must agree, or the broker refuses the second declaration).
fn declare_headers(persistent: bool) -> [(&'static [u8], &'static [u8]); 3] {
    [
        (b"durable", if persistent { b"true" } else { b"false" }),
        (b"auto-delete", b"true"),
        (b"exclusive", b"false"),
    ]
}

/// One SEND encoded once; per message only the stamp (and the receipt id, if
/// receipts are on) change.
pub struct SendTemplate {
    bytes: Vec<u8>,
    stamp_at: usize,
    receipt_at: Option<usize>,
}

impl SendTemplate {
    /// `declare`: add the queue-declaring headers (a producer's first SEND).
    pub fn new(
        encoder: &StompEncoder,
        destination: &str,
        persistent: bool,
        receipts: bool,
        declare: bool,
        size: usize,
    ) -> SendTemplate {
        let size = size.max(STAMP_LEN);
        let body: Vec<u8> = (0..size).map(|i| (i * 7 + 13) as u8).collect();
        let mut out = BytesMut::new();
        let mut w = encoder.writer(&mut out, &Command::Send, 256 + size);
        w.header(b"destination", destination.as_bytes());
        if persistent {
            w.header(b"persistent", b"true");
        }
        if declare {
            for (n, v) in declare_headers(persistent) {
                w.header(n, v);
            }
        }
        if receipts {
            w.header(b"receipt", &[b'0'; RECEIPT_DIGITS]);
        }
        w.finish(&body);
        let bytes = out.to_vec();
        // The body is last, followed by NUL and maybe LF.
        let nul = bytes.iter().rposition(|&b| b == 0).unwrap_or(bytes.len());
        let stamp_at = nul.saturating_sub(size);
        debug_assert_eq!(&bytes[stamp_at..nul], &body[..]);
        let receipt_at = receipts.then(|| {
            let key = b"\nreceipt:";
            bytes
                .windows(key.len())
                .position(|w| w == key)
                .map_or(0, |p| p + key.len())
        });
        SendTemplate {
            bytes,
            stamp_at,
            receipt_at,
        }
    }

    #[inline]
    pub fn append(&self, out: &mut BytesMut, stamp: Stamp) {
        let base = out.len();
        out.extend_from_slice(&self.bytes);
        let at = base + self.stamp_at;
        write_stamp(&mut out[at..at + STAMP_LEN], stamp);
        if let Some(r) = self.receipt_at {
            let at = base + r;
            put_receipt_id(&mut out[at..at + RECEIPT_DIGITS], stamp.seq + 1);
        }
    }
}

/// `n` as [`RECEIPT_DIGITS`] zero-padded decimal digits.
fn put_receipt_id(buf: &mut [u8], mut n: u64) {
    for d in buf.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn parse_receipt_id(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A connected STOMP producer.
pub struct StompProducer {
    conn: StompConnection,
    plan: Publishing,
    first: SendTemplate,
    template: SendTemplate,
}

impl StompProducer {
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        uri: &AmqpUri,
        id: u16,
        destination: &str,
        persistent: bool,
        size: usize,
        confirm: u32,
        rate: Option<f64>,
        limit: u64,
    ) -> Result<StompProducer> {
        let conn = StompConnection::open(uri).await?;
        let receipts = confirm > 0;
        let make = |declare| {
            SendTemplate::new(
                &conn.encoder,
                destination,
                persistent,
                receipts,
                declare,
                size,
            )
        };
        let (first, template) = (make(true), make(false));
        Ok(StompProducer {
            conn,
            plan: Publishing {
                id,
                limit,
                confirm: confirm as u64,
                rate,
            },
            first,
            template,
        })
    }

    /// Publish from `start` until `deadline`, the limit, or `stop`; then wait for
    /// outstanding receipts and disconnect. The loop is the AMQP producer's.
    pub async fn run(
        mut self,
        shared: Arc<Shared>,
        start: Instant,
        deadline: Option<Instant>,
        stop: CancellationToken,
    ) -> Result<ProducerOutcome> {
        let plan = self.plan;
        let outcome = publish(&mut self, plan, start, deadline, &shared, &stop).await?;
        let _ = self.conn.close().await;
        Ok(outcome)
    }
}

impl Publish for StompProducer {
    type Conn = StompConnection;

    fn conn(&mut self) -> &mut StompConnection {
        &mut self.conn
    }

    fn append(&mut self, stamp: Stamp) {
        // The first SEND declares the queue.
        let t = if stamp.seq == 0 {
            &self.first
        } else {
            &self.template
        };
        t.append(&mut self.conn.out, stamp);
    }

    async fn on_item(
        &mut self,
        item: Item,
        window: &mut ConfirmWindow,
        shared: &Shared,
    ) -> Result<()> {
        if let Some(f) = check(item)? {
            on_receipt(&f, window, shared)?;
        }
        Ok(())
    }
}

fn on_receipt(frame: &Frame, window: &mut ConfirmWindow, shared: &Shared) -> Result<()> {
    if frame.command != Command::Receipt {
        return Err(unexpected("on a producer connection", frame));
    }
    let id = frame.header("receipt-id").and_then(parse_receipt_id);
    let Some(id) = id else {
        return Err(Error::Other(format!(
            "RECEIPT with a receipt-id warren perf never asked for: {:?}",
            frame.header("receipt-id").map(String::from_utf8_lossy)
        )));
    };
    // One receipt per SEND, possibly out of order: settle just this one.
    let n = window.settle(id, false, true);
    shared.confirmed.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// A connected STOMP consumer whose SUBSCRIBE has been receipted.
pub struct StompConsumer {
    conn: StompConnection,
    queue_idx: usize,
    ack: StompAck,
    ack_every: u32,
    /// Messages since the last ACK (ack mode client).
    unacked: u32,
}

impl StompConsumer {
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        uri: &AmqpUri,
        destination: &str,
        queue_idx: usize,
        id: &str,
        ack: StompAck,
        prefetch: u16,
        multi_ack_every: u32,
        persistent: bool,
    ) -> Result<StompConsumer> {
        let mut conn = StompConnection::open(uri).await?;
        let prefetch_s = prefetch.to_string();
        let receipt = format!("{id}-subscribed");
        let mut headers: Vec<(&[u8], &[u8])> = vec![
            (b"id", id.as_bytes()),
            (b"destination", destination.as_bytes()),
            (b"ack", ack.as_str().as_bytes()),
        ];
        if ack != StompAck::Auto && prefetch > 0 {
            headers.push((b"prefetch-count", prefetch_s.as_bytes()));
        }
        headers.extend(declare_headers(persistent));
        headers.push((b"receipt", receipt.as_bytes()));
        conn.frame(&Command::Subscribe, &headers);
        conn.flush().await?;
        let frame = conn.recv().await?;
        if frame.command != Command::Receipt
            || frame.header("receipt-id") != Some(receipt.as_bytes())
        {
            return Err(unexpected("instead of the SUBSCRIBE receipt", &frame));
        }
        Ok(StompConsumer {
            conn,
            queue_idx,
            ack,
            ack_every: ack_every(prefetch, multi_ack_every),
            unacked: 0,
        })
    }

    /// Consume until `stop`, checking and timing every message; then disconnect.
    pub async fn run(
        mut self,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> Result<ConsumerOutcome> {
        let queue_idx = self.queue_idx;
        let received = consume(&mut self, queue_idx, &shared, &stop).await?;
        let _ = self.conn.close().await;
        Ok(ConsumerOutcome { received })
    }

    #[inline]
    fn on_frame(&mut self, frame: Frame, rec: &mut Recorder, shared: &Shared) -> Result<()> {
        if frame.command != Command::Message {
            return Err(unexpected("on a consumer connection", &frame));
        }
        let redelivered = frame.header("redelivered") == Some(b"true");
        rec.record(crate::seq::read_stamp(&frame.body), redelivered, shared);
        let due = match self.ack {
            StompAck::Auto => false,
            StompAck::ClientIndividual => true,
            StompAck::Client => {
                self.unacked += 1;
                self.unacked >= self.ack_every
            }
        };
        if due {
            let Some(id) = frame.header("ack") else {
                return Err(Error::Other(
                    "MESSAGE without an ack header in a client ack mode".into(),
                ));
            };
            self.conn.frame(&Command::Ack, &[(b"id", id)]);
            self.unacked = 0;
        }
        Ok(())
    }
}

impl Consume for StompConsumer {
    type Conn = StompConnection;

    fn conn(&mut self) -> &mut StompConnection {
        &mut self.conn
    }

    async fn on_item(&mut self, item: Item, rec: &mut Recorder, shared: &Shared) -> Result<()> {
        if let Some(f) = check(item)? {
            self.on_frame(f, rec, shared)?;
        }
        Ok(())
    }
}

/// `warren perf --protocol stomp` (throughput scenario).
pub async fn throughput(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<ThroughputReport> {
    if args.exchange.as_deref().is_some_and(|e| !e.is_empty())
        || args.routing_key.is_some()
        || args.exchange_type != ExchangeType::Direct
    {
        return Err(Error::Other(
            "over STOMP producers SEND to /queue/NAME: --exchange, --routing-key and --exchange-type are AMQP only"
                .into(),
        ));
    }
    let ack = args.stomp_ack().map_err(Error::Other)?;
    let mut queue_args = args.clone();
    queue_args.exchange = Some(String::new());
    let plan = throughput::plan(&queue_args, names)?;
    throughput::validate(args, &plan)?;
    let dest = |q: &str| format!("/queue/{q}");

    let consumers: Vec<ConsumerTask> =
        futures_util::future::try_join_all((0..args.consumers).map(|i| {
            let q = i % plan.queues.len();
            let destination = dest(&plan.queues[q]);
            let id = format!("perf-c{i}");
            async move {
                StompConsumer::connect(
                    uri,
                    &destination,
                    q,
                    &id,
                    ack,
                    args.prefetch,
                    args.multi_ack_every,
                    args.persistent,
                )
                .await
            }
        }))
        .await?
        .into_iter()
        .map(|c| -> ConsumerTask { Box::new(move |shared, stop| c.run(shared, stop).boxed()) })
        .collect();
    let producers: Vec<ProducerTask> =
        futures_util::future::try_join_all((0..args.producers).map(|i| {
            let destination = dest(&plan.producer_keys[i as usize]);
            async move {
                StompProducer::connect(
                    uri,
                    i,
                    &destination,
                    args.persistent,
                    args.size,
                    args.confirm,
                    args.rate.filter(|r| *r > 0.0),
                    args.pmessages.unwrap_or(u64::MAX),
                )
                .await
            }
        }))
        .await?
        .into_iter()
        .map(|p| -> ProducerTask {
            Box::new(move |shared, start, deadline, stop| {
                p.run(shared, start, deadline, stop).boxed()
            })
        })
        .collect();
    throughput::drive(args, uri, &plan, consumers, producers).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::MAX_SEQ;
    use tokio_util::codec::Decoder;

    #[test]
    fn send_template_patches_stamp_and_receipt() {
        let (_, mut enc) = StompCodec::new(Config::client()).into_parts();
        enc.set_version(Version::V1_2);
        let t = SendTemplate::new(&enc, "/queue/q", false, true, true, 20);
        let mut out = BytesMut::new();
        for seq in 0..3 {
            t.append(
                &mut out,
                Stamp {
                    sent_ns: 77,
                    producer: 5,
                    seq,
                },
            );
        }
        // The broker's side of the codec reads them back.
        let mut dec = warren_stomp::StompDecoder::new(
            warren_stomp::Dialect::RabbitMq,
            warren_stomp::Limits::DEFAULT,
        );
        for seq in 0..3 {
            let Some(Item::Frame(f)) = dec.decode(&mut out).unwrap() else {
                panic!("no frame")
            };
            assert_eq!(f.command, Command::Send);
            assert_eq!(f.header("destination"), Some(&b"/queue/q"[..]));
            assert_eq!(f.header("auto-delete"), Some(&b"true"[..]));
            assert_eq!(f.body.len(), 20);
            let s = crate::seq::read_stamp(&f.body).unwrap();
            assert_eq!((s.sent_ns, s.producer, s.seq), (77, 5, seq));
            let r = parse_receipt_id(f.header("receipt").unwrap()).unwrap();
            assert_eq!(r, seq + 1);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn receipt_ids() {
        let mut b = [0u8; RECEIPT_DIGITS];
        put_receipt_id(&mut b, MAX_SEQ + 1);
        assert_eq!(parse_receipt_id(&b), Some(MAX_SEQ + 1));
        assert_eq!(parse_receipt_id(b"12"), Some(12));
        assert_eq!(parse_receipt_id(b"bye"), None);
        assert_eq!(parse_receipt_id(b""), None);
    }
}
