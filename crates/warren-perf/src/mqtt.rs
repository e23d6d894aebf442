//! The throughput scenario over MQTT 3.1.1 (`--protocol mqtt`, or an `mqtt://`
//! URI): 3.1.1 so that RabbitMQ 3.10's MQTT plugin and mosquitto run it too.
//!
//! Same shape as the AMQP and STOMP runs, driven, checked and reported by
//! [`crate::throughput`]: producer i PUBLISHes to topic `<queue i mod
//! --queues>` at `--qos`, consumer i SUBSCRIBEs to topic `<queue i mod
//! --queues>` at the same QoS, payloads are the 16-byte stamp padded to --size.
//!
//! * QoS 1: each producer keeps at most --confirm (default 100)
//!   PUBLISHes without PUBACK, the twin of publisher confirms; consumers
//!   PUBACK every message (MQTT has no cumulative ack), batched per read.
//! * Every session is clean, and there is no keep-alive (0): nothing but the
//!   run's own packets on the wire.
//! * With --rate, producer i starts i/N of a message interval late, as N
//!   independent devices would: otherwise 10,000 publishers at 1 msg/s all
//!   publish in the same millisecond and the run measures that burst.
//!
//! The client is built for speed like the others: warren-mqtt's codec decodes
//! (and encodes the handshake), PUBLISHes are copied from a pre-encoded
//! template with only the stamp and packet id patched, and everything is
//! written in batches with one syscall.

use crate::tls::{ReadHalf, WriteHalf};
use bytes::{BufMut, BytesMut};
use futures_util::{FutureExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::codec::{Encoder, FramedRead};
use tokio_util::sync::CancellationToken;
use warren_mqtt::{Connect, DecodeError, MqttCodec, Packet, Properties, Props, Publish, QoS};
use warren_mqtt::{ReasonCode, Subscribe, SubscriptionOptions, Version};

use crate::client::{Error, Result};
use crate::consume::{consume, Consume};
use crate::load::{ConsumerOutcome, ProducerOutcome, Recorder, Shared};
use crate::net::{self, connect_from, HANDSHAKE_TIMEOUT, IO_BUFFER};
use crate::produce::{publish, Publish as PublishLoop, Publishing};
use crate::seq::{write_stamp, ConfirmWindow, Stamp, STAMP_LEN};
use crate::throughput::{self, ConsumerTask, ProducerTask, ThroughputReport};
use crate::uri::AmqpUri;
use crate::web::raise_nofile_limit;
use crate::wire::{self, Parts, Wire};
use crate::{ExchangeType, Names, PerfArgs};

/// Packet ids cycle through 1..=65535; the PUBACK window must stay below.
const PACKET_IDS: u64 = 65_535;
/// The QoS 1 window when --confirm is 0 (MQTT QoS 1 needs one).
const DEFAULT_WINDOW: u32 = 100;

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Other(format!("bad MQTT packet from broker: {e}"))
    }
}

fn unexpected(what: &str, p: &Packet) -> Error {
    Error::Other(format!("unexpected MQTT {} {what}", p.name()))
}

/// The packet id of message `seq` (ids cycle; the window is far smaller).
fn packet_id(seq: u64) -> u16 {
    (seq % PACKET_IDS + 1) as u16
}

/// CONNECT for MQTT 3.1.1: clean session, no keep-alive, the URI's user (as
/// `vhost:user` when the vhost is not "/", RabbitMQ's convention).
pub(crate) fn connect_packet(uri: &AmqpUri, client_id: &str) -> Packet {
    let user = if uri.vhost == "/" || uri.vhost.is_empty() {
        uri.user.clone()
    } else {
        format!("{}:{}", uri.vhost, uri.user)
    };
    Packet::Connect(Box::new(Connect {
        version: Version::V3_1_1,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::default(),
        client_id: client_id.to_owned().into(),
        will: None,
        username: Some(user.into()),
        password: Some(uri.password.clone().into()),
    }))
}

/// CONNACK must accept; anything else is an error naming the return code.
pub(crate) fn check_connack(p: &Packet) -> Result<()> {
    match p {
        Packet::Connack(c) if c.code == ReasonCode::SUCCESS => Ok(()),
        Packet::Connack(c) => Err(Error::Other(format!(
            "broker refused the MQTT connection: return code {:?}",
            c.code
        ))),
        p => Err(unexpected("instead of CONNACK", p)),
    }
}

/// One MQTT 3.1.1 client connection; halves and output buffer apart so the
/// hot loops can read and write in one `select!`.
pub struct MqttConnection {
    reader: FramedRead<ReadHalf, MqttCodec>,
    writer: WriteHalf,
    out: BytesMut,
    codec: MqttCodec,
}

impl MqttConnection {
    /// Connect (from source slot `slot`) and wait for CONNACK.
    pub async fn open(uri: &AmqpUri, client_id: &str, slot: usize, spread: u8) -> Result<Self> {
        let what = format!("connecting to {uri}");
        let open = async {
            let (rd, wr) =
                crate::tls::split(connect_from(uri, slot, spread).await?, uri.tls, &uri.host)
                    .await?;
            let mut codec = MqttCodec::new(warren_mqtt::codec::DEFAULT_MAX_PACKET_SIZE);
            codec.set_version(Version::V3_1_1);
            let mut conn = MqttConnection {
                reader: FramedRead::with_capacity(rd, codec.clone(), IO_BUFFER),
                writer: wr,
                out: BytesMut::with_capacity(IO_BUFFER),
                codec,
            };
            conn.send(&connect_packet(uri, client_id))?;
            conn.flush().await?;
            check_connack(&conn.recv().await?)?;
            Ok(conn)
        };
        net::with_timeout(what, HANDSHAKE_TIMEOUT, open).await
    }

    /// Append a packet to the output buffer.
    fn send(&mut self, p: &Packet) -> Result<()> {
        Ok(self.codec.encode(p, &mut self.out)?)
    }

    async fn flush(&mut self) -> Result<()> {
        wire::flush(&mut self.writer, &mut self.out).await
    }

    async fn recv(&mut self) -> Result<Packet> {
        wire::or_closed(self.reader.next().await)
    }

    /// DISCONNECT, then wait (briefly) for the broker to close the socket.
    pub async fn close(mut self) -> Result<()> {
        self.send(&Packet::Disconnect(warren_mqtt::Disconnect::new(
            ReasonCode::SUCCESS,
        )))?;
        self.flush().await?;
        wire::await_close(&mut self.reader, |_| false).await;
        Ok(())
    }
}

impl Wire for MqttConnection {
    type Codec = MqttCodec;

    fn wire(&mut self) -> Parts<'_, MqttCodec> {
        (&mut self.reader, &mut self.writer, &mut self.out)
    }
}

/// One PUBLISH encoded once; per message only the stamp (and the packet id
/// at QoS 1) change.
pub struct PublishTemplate {
    bytes: Vec<u8>,
    stamp_at: usize,
    id_at: Option<usize>,
}

impl PublishTemplate {
    pub fn new(codec: &mut MqttCodec, topic: &str, qos: QoS, size: usize) -> Result<Self> {
        let size = size.max(STAMP_LEN);
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 13) as u8).collect();
        let p = Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.to_owned().into(),
            packet_id: (qos != QoS::AtMostOnce).then_some(1),
            properties: Props::NONE,
            payload: payload.into(),
        });
        let mut out = BytesMut::new();
        codec.encode(&p, &mut out)?;
        // 3.1.1: ... topic, packet id (QoS > 0), payload last.
        let stamp_at = out.len() - size;
        Ok(PublishTemplate {
            bytes: out.to_vec(),
            stamp_at,
            id_at: (qos != QoS::AtMostOnce).then_some(stamp_at - 2),
        })
    }

    #[inline]
    pub fn append(&self, out: &mut BytesMut, stamp: Stamp) {
        let base = out.len();
        out.extend_from_slice(&self.bytes);
        let at = base + self.stamp_at;
        write_stamp(&mut out[at..at + STAMP_LEN], stamp);
        if let Some(i) = self.id_at {
            out[base + i..base + i + 2].copy_from_slice(&packet_id(stamp.seq).to_be_bytes());
        }
    }
}

/// A connected MQTT producer.
pub struct MqttProducer {
    conn: MqttConnection,
    plan: Publishing,
    template: PublishTemplate,
}

impl MqttProducer {
    /// Publish from `start` (shifted by `offset`) until `deadline`, the limit
    /// or `stop`; wait for outstanding PUBACKs, disconnect.
    pub async fn run(
        mut self,
        shared: Arc<Shared>,
        start: Instant,
        offset: Duration,
        deadline: Option<Instant>,
        stop: CancellationToken,
    ) -> Result<ProducerOutcome> {
        let plan = self.plan;
        let outcome = publish(&mut self, plan, start + offset, deadline, &shared, &stop).await?;
        let _ = self.conn.close().await;
        Ok(outcome)
    }

    /// PUBACK `id`: the message it settles is the outstanding one whose seq
    /// maps to `id` (unique: the window is below [`PACKET_IDS`]). Brokers
    /// answer in order (spec 4.6), but out of order is handled too.
    fn on_puback(&self, id: u16, window: &mut ConfirmWindow, shared: &Shared) {
        // Tags are seq + 1.
        let oldest = window.oldest_tag() - 1;
        let delta = (u64::from(id) + PACKET_IDS - u64::from(packet_id(oldest))) % PACKET_IDS;
        let n = window.settle(oldest + delta + 1, false, true);
        shared.confirmed.fetch_add(n, Ordering::Relaxed);
    }
}

impl PublishLoop for MqttProducer {
    type Conn = MqttConnection;

    fn conn(&mut self) -> &mut MqttConnection {
        &mut self.conn
    }

    fn append(&mut self, stamp: Stamp) {
        self.template.append(&mut self.conn.out, stamp);
    }

    async fn on_item(
        &mut self,
        item: Packet,
        window: &mut ConfirmWindow,
        shared: &Shared,
    ) -> Result<()> {
        match item {
            Packet::Puback(a) if self.plan.confirm > 0 => {
                self.on_puback(a.packet_id, window, shared);
                Ok(())
            }
            p => Err(unexpected("on a producer connection", &p)),
        }
    }
}

/// A connected MQTT consumer whose SUBSCRIBE has been SUBACKed.
pub struct MqttConsumer {
    conn: MqttConnection,
    queue_idx: usize,
}

impl MqttConsumer {
    pub async fn connect(
        args: &PerfArgs,
        uri: &AmqpUri,
        client_id: &str,
        topic: &str,
        queue_idx: usize,
    ) -> Result<MqttConsumer> {
        let mut conn = MqttConnection::open(uri, client_id, 0, args.source_addresses).await?;
        let qos = qos(args);
        conn.send(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Props::NONE,
            filters: vec![(topic.to_owned().into(), SubscriptionOptions::qos(qos))],
        }))?;
        conn.flush().await?;
        match conn.recv().await? {
            Packet::Suback(s) if s.codes.iter().all(|c| c.0 == qos as u8) => {}
            Packet::Suback(s) => {
                return Err(Error::Other(format!(
                    "SUBSCRIBE at QoS {} refused or downgraded: {:?}",
                    qos as u8, s.codes
                )))
            }
            p => return Err(unexpected("instead of SUBACK", &p)),
        }
        Ok(MqttConsumer { conn, queue_idx })
    }

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
}

impl Consume for MqttConsumer {
    type Conn = MqttConnection;

    fn conn(&mut self) -> &mut MqttConnection {
        &mut self.conn
    }

    async fn on_item(&mut self, item: Packet, rec: &mut Recorder, shared: &Shared) -> Result<()> {
        let Packet::Publish(p) = item else {
            return Err(unexpected("on a consumer connection", &item));
        };
        rec.record(crate::seq::read_stamp(&p.payload), p.dup, shared);
        if let Some(id) = p.packet_id {
            // PUBACK is 4 bytes: written by hand, no Packet built per message.
            let out = &mut self.conn.out;
            out.put_u8(0x40);
            out.put_u8(2);
            out.put_u16(id);
        }
        Ok(())
    }
}

fn qos(args: &PerfArgs) -> QoS {
    if args.qos == 1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    }
}

/// `warren perf --protocol mqtt` (throughput scenario).
pub async fn throughput(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<ThroughputReport> {
    if args.exchange.as_deref().is_some_and(|e| !e.is_empty())
        || args.routing_key.is_some()
        || args.exchange_type != ExchangeType::Direct
        || args.persistent
    {
        return Err(Error::Other(
            "over MQTT producers PUBLISH to a topic per queue: --exchange, --routing-key, --exchange-type and --persistent are AMQP only"
                .into(),
        ));
    }
    let mut args = args.clone();
    args.exchange = Some(String::new());
    if args.qos == 1 && args.confirm == 0 {
        args.confirm = DEFAULT_WINDOW;
    }
    if args.qos == 0 {
        args.confirm = 0;
    }
    if u64::from(args.confirm) >= PACKET_IDS {
        return Err(Error::Other(format!(
            "--confirm {} : MQTT has {PACKET_IDS} packet ids",
            args.confirm
        )));
    }
    let args = &args;
    let plan = throughput::plan(args, names)?;
    throughput::validate(args, &plan)?;
    let clients = args.producers as u64 + args.consumers as u64;
    raise_nofile_limit(clients + crate::web_idle::SPARE_FDS)?;
    let conc = args.concurrency.max(1);

    let consumers: Vec<ConsumerTask> = futures_util::stream::iter(0..args.consumers)
        .map(|i| {
            let q = i % plan.queues.len();
            let (topic, id) = (plan.queues[q].clone(), format!("{}-c{i}", names.prefix));
            async move { MqttConsumer::connect(args, uri, &id, &topic, q).await }
        })
        .buffered(conc)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|c| -> Result<ConsumerTask> {
            let c = c?;
            Ok(Box::new(move |shared, stop| c.run(shared, stop).boxed()))
        })
        .collect::<Result<_>>()?;
    let rate = args.rate.filter(|r| *r > 0.0);
    let np = args.producers;
    let producers: Vec<ProducerTask> = futures_util::stream::iter(0..np)
        .map(|i| {
            let topic = plan.producer_keys[i as usize].clone();
            let id = format!("{}-p{i}", names.prefix);
            async move {
                let mut conn =
                    MqttConnection::open(uri, &id, i as usize, args.source_addresses).await?;
                let template = PublishTemplate::new(&mut conn.codec, &topic, qos(args), args.size)?;
                Ok::<_, Error>(MqttProducer {
                    conn,
                    plan: Publishing {
                        id: i,
                        limit: args.pmessages.unwrap_or(u64::MAX),
                        confirm: args.confirm as u64,
                        rate,
                    },
                    template,
                })
            }
        })
        .buffered(conc)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|p| -> Result<ProducerTask> {
            let p = p?;
            let offset = rate.map_or(Duration::ZERO, |r| {
                Duration::from_secs_f64(p.plan.id as f64 / np as f64 / r)
            });
            Ok(Box::new(move |shared, start, deadline, stop| {
                p.run(shared, start, offset, deadline, stop).boxed()
            }))
        })
        .collect::<Result<_>>()?;
    throughput::drive(args, uri, &plan, consumers, producers).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn publish_template_patches_stamp_and_packet_id() {
        let mut codec = MqttCodec::new(1 << 20);
        codec.set_version(Version::V3_1_1);
        let t = PublishTemplate::new(&mut codec, "t/q", QoS::AtLeastOnce, 20).unwrap();
        let mut out = BytesMut::new();
        for seq in [0, 1, PACKET_IDS] {
            let stamp = Stamp {
                sent_ns: 77,
                producer: 5,
                seq,
            };
            t.append(&mut out, stamp);
        }
        for seq in [0, 1, PACKET_IDS] {
            let Some(Packet::Publish(p)) = codec.decode(&mut out).unwrap() else {
                panic!("no PUBLISH")
            };
            assert_eq!((&p.topic[..], p.payload.len()), (&b"t/q"[..], 20));
            assert_eq!(p.packet_id, Some(packet_id(seq)));
            let s = crate::seq::read_stamp(&p.payload).unwrap();
            assert_eq!((s.sent_ns, s.producer, s.seq), (77, 5, seq));
        }
        assert_eq!(packet_id(PACKET_IDS - 1), 65_535);
        assert_eq!(packet_id(PACKET_IDS), 1);
    }
}
