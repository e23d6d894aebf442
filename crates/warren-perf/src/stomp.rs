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

use bytes::{Buf, BytesMut};
use futures_util::{FutureExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use warren_stomp::{Command, Config, DecodeError, Frame, Item, StompCodec, StompDecoder};
use warren_stomp::{StompEncoder, Version};

use crate::client::{Error, Result};
use crate::load::{sleep_until_opt, ConsumerOutcome, ProducerOutcome, Recorder, Shared};
use crate::load::{CONFIRM_DRAIN, CONSUME_BATCH, OUT_HIGH_WATER, PUBLISH_BATCH};
use crate::seq::{write_stamp, ConfirmWindow, Stamp, MAX_SEQ, STAMP_LEN};
use crate::throughput::{self, ConsumerTask, ProducerTask, ThroughputReport};
use crate::uri::AmqpUri;
use crate::{ExchangeType, Names, PerfArgs, StompAck};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
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
    reader: FramedRead<OwnedReadHalf, StompDecoder>,
    writer: OwnedWriteHalf,
    /// Frames waiting to be written.
    out: BytesMut,
    encoder: StompEncoder,
}

impl StompConnection {
    /// Connect and log in (CONNECT with `accept-version:1.2`, the URI's vhost as
    /// `host`, heart-beats off).
    pub async fn open(uri: &AmqpUri) -> Result<StompConnection> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, Self::open_inner(uri)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Other(format!(
                "connecting to {uri}: no answer within {HANDSHAKE_TIMEOUT:?}"
            ))),
        }
    }

    async fn open_inner(uri: &AmqpUri) -> Result<StompConnection> {
        let socket = TcpStream::connect((uri.host.as_str(), uri.port))
            .await
            .map_err(|e| Error::Other(format!("connecting to {uri}: {e}")))?;
        socket.set_nodelay(true)?;
        let (rd, wr) = socket.into_split();
        let (decoder, encoder) = StompCodec::new(Config::client()).into_parts();
        let mut conn = StompConnection {
            reader: FramedRead::with_capacity(rd, decoder, 64 * 1024),
            writer: wr,
            out: BytesMut::with_capacity(64 * 1024),
            encoder,
        };
        conn.frame(
            &Command::Connect,
            &[
                (b"accept-version", b"1.2"),
                (b"host", uri.vhost.as_bytes()),
                (b"login", uri.user.as_bytes()),
                (b"passcode", uri.password.as_bytes()),
                (b"heart-beat", b"0,0"),
            ],
        );
        conn.flush().await?;
        let frame = conn.recv().await?;
        if frame.command != Command::Connected {
            return Err(unexpected("instead of CONNECTED", &frame));
        }
        match frame.header("version") {
            Some(b"1.2") => {}
            v => {
                return Err(Error::Other(format!(
                    "broker negotiated STOMP {}, warren perf needs 1.2",
                    String::from_utf8_lossy(v.unwrap_or(b"1.0"))
                )))
            }
        }
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
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// The next frame (heart-beats skipped); an ERROR frame is an error.
    pub async fn recv(&mut self) -> Result<Frame> {
        loop {
            match self.reader.next().await {
                None => return Err(Error::Other("broker closed the socket".into())),
                Some(item) => {
                    if let Some(f) = check(item?)? {
                        return Ok(f);
                    }
                }
            }
        }
    }

    /// A frame if one can be had without waiting (heart-beats come out as None
    /// inside Some, so the caller keeps draining).
    fn try_recv(&mut self) -> Option<Result<Option<Frame>>> {
        match self.reader.next().now_or_never()? {
            None => Some(Err(Error::Other("broker closed the socket".into()))),
            Some(Err(e)) => Some(Err(e.into())),
            Some(Ok(item)) => Some(check(item)),
        }
    }

    /// DISCONNECT with a receipt, and wait (briefly) for it so the broker has
    /// released the connection before the next measurement starts.
    pub async fn close(mut self) -> Result<()> {
        self.frame(&Command::Disconnect, &[(b"receipt", b"warren-perf-bye")]);
        self.flush().await?;
        let wait = async {
            loop {
                match self.reader.next().await {
                    Some(Ok(Item::Frame(f))) if f.command == Command::Receipt => break,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, wait).await;
        Ok(())
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
    id: u16,
    confirm: u64,
    rate: Option<f64>,
    limit: u64,
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
            id,
            confirm: confirm as u64,
            rate,
            limit,
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
        let limit = self.limit.min(MAX_SEQ);
        let confirm = self.confirm;
        let mut window = ConfirmWindow::new();
        let mut seq = 0u64;
        let conn = &mut self.conn;
        loop {
            while let Some(frame) = conn.try_recv() {
                if let Some(f) = frame? {
                    on_receipt(&f, &mut window, &shared)?;
                }
            }
            let now = Instant::now();
            let done = seq >= limit || deadline.is_some_and(|d| now >= d) || stop.is_cancelled();
            if !done && conn.out.len() < OUT_HIGH_WATER {
                let mut n = PUBLISH_BATCH.min(limit - seq);
                if confirm > 0 {
                    n = n.min(confirm.saturating_sub(window.outstanding()));
                }
                if let Some(rate) = self.rate {
                    let due =
                        (now.saturating_duration_since(start).as_secs_f64() * rate) as u64 + 1;
                    n = n.min(due.saturating_sub(seq));
                }
                if n > 0 {
                    let sent_ns = shared.now_ns();
                    for _ in 0..n {
                        let t = if seq == 0 {
                            &self.first
                        } else {
                            &self.template
                        };
                        t.append(
                            &mut conn.out,
                            Stamp {
                                sent_ns,
                                producer: self.id,
                                seq,
                            },
                        );
                        seq += 1;
                        if confirm > 0 {
                            window.published();
                        }
                    }
                    shared.published.fetch_add(n, Ordering::Relaxed);
                }
            }
            if !conn.out.is_empty() {
                tokio::select! {
                    biased;
                    item = conn.reader.next() => {
                        let item = item.ok_or_else(|| Error::Other("broker closed the socket".into()))??;
                        if let Some(f) = check(item)? {
                            on_receipt(&f, &mut window, &shared)?;
                        }
                    }
                    written = conn.writer.write(&conn.out) => {
                        let n = written?;
                        if n == 0 {
                            return Err(Error::Other("socket closed while publishing".into()));
                        }
                        conn.out.advance(n);
                    }
                }
                continue;
            }
            if done {
                break;
            }
            let next_due = self
                .rate
                .map(|rate| start + Duration::from_secs_f64(seq as f64 / rate));
            let wake = match (next_due, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                item = conn.reader.next() => {
                    let item = item.ok_or_else(|| Error::Other("broker closed the socket".into()))??;
                    if let Some(f) = check(item)? {
                        on_receipt(&f, &mut window, &shared)?;
                    }
                }
                _ = sleep_until_opt(wake) => {}
                _ = stop.cancelled() => {}
            }
        }
        if confirm > 0 {
            let wait = async {
                while window.outstanding() > 0 {
                    let f = conn.recv().await?;
                    on_receipt(&f, &mut window, &shared)?;
                }
                Ok::<(), Error>(())
            };
            if let Ok(r) = tokio::time::timeout(CONFIRM_DRAIN, wait).await {
                r?;
            }
        }
        let outcome = ProducerOutcome {
            sent: seq,
            acked: window.acked(),
            nacked: window.nacked(),
            unconfirmed: window.outstanding(),
        };
        let _ = self.conn.close().await;
        Ok(outcome)
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
        // Never wait for more unacked messages than the prefetch lets through.
        let ack_every = match (prefetch, multi_ack_every.max(1)) {
            (0, n) => n,
            (p, n) => n.min(p as u32),
        };
        Ok(StompConsumer {
            conn,
            queue_idx,
            ack,
            ack_every,
        })
    }

    /// Consume until `stop`, checking and timing every message; then disconnect.
    pub async fn run(
        mut self,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> Result<ConsumerOutcome> {
        let mut rec = Recorder::new();
        let mut unacked = 0u32;
        let mut received = 0u64;
        loop {
            let item = tokio::select! {
                biased;
                item = self.conn.reader.next() => item.ok_or_else(|| Error::Other("broker closed the socket".into()))??,
                _ = stop.cancelled() => break,
            };
            if let Some(f) = check(item)? {
                self.on_frame(f, &mut rec, &mut unacked, &shared)?;
            }
            let mut n = 1;
            while n < CONSUME_BATCH {
                match self.conn.try_recv() {
                    Some(f) => {
                        if let Some(f) = f? {
                            self.on_frame(f, &mut rec, &mut unacked, &shared)?;
                        }
                    }
                    None => break,
                }
                n += 1;
            }
            received += rec.commit(&shared, self.queue_idx);
            self.conn.flush().await?;
        }
        received += rec.commit(&shared, self.queue_idx);
        let _ = self.conn.close().await;
        Ok(ConsumerOutcome { received })
    }

    #[inline]
    fn on_frame(
        &mut self,
        frame: Frame,
        rec: &mut Recorder,
        unacked: &mut u32,
        shared: &Shared,
    ) -> Result<()> {
        if frame.command != Command::Message {
            return Err(unexpected("on a consumer connection", &frame));
        }
        let redelivered = frame.header("redelivered") == Some(b"true");
        rec.record(crate::seq::read_stamp(&frame.body), redelivered, shared);
        let due = match self.ack {
            StompAck::Auto => false,
            StompAck::ClientIndividual => true,
            StompAck::Client => {
                *unacked += 1;
                *unacked >= self.ack_every
            }
        };
        if due {
            let Some(id) = frame.header("ack") else {
                return Err(Error::Other(
                    "MESSAGE without an ack header in a client ack mode".into(),
                ));
            };
            self.conn.frame(&Command::Ack, &[(b"id", id)]);
            *unacked = 0;
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
