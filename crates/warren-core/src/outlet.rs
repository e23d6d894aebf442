//! The outbound half of a client connection, for every protocol adapter.
//!
//! Everything a connection sends (replies from its reader task, deliveries pushed
//! by queues on any thread) goes through one FIFO to a writer task. One FIFO
//! keeps the protocol's ordering (consume-ok before the first deliver, a
//! subscription's messages in order); the writer takes everything queued at
//! once, encodes it into one buffer and writes it with one syscall, which is
//! where batching comes from under load.
//!
//! The FIFO is a `VecDeque` under a mutex plus a `Notify`, not a tokio mpsc
//! channel: the writer swaps the whole queue out under one lock (instead of one
//! atomic pop per item), and an idle connection costs only what it has queued
//! recently, where an mpsc channel pre-allocates a block of 32 slots per
//! connection. Likewise the output buffer starts empty and grows to what the
//! traffic needs. Both matter with many idle connections.
//!
//! What an item is and how it is written is the adapter's business: the outlet
//! is generic over the item type `T`, and [`run_writer`] takes a [`WireEncoder`]
//! for it (AMQP frames, STOMP frames, ...). Backpressure is shared: above a
//! high-water mark of queued bytes, queues stop offering to the connection's
//! consumers ([`Outlet::has_room`]) and are woken when it drains.

use crate::stats::ConnectionStats;
use crate::Queue;
use bytes::BytesMut;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// Above this many bytes queued for the socket, queues stop delivering to this
/// connection's consumers until the writer catches up (TCP backpressure for
/// consumers, auto-ack ones included).
const HIGH_WATER: usize = 4 * 1024 * 1024;
const LOW_WATER: usize = 1024 * 1024;
/// The high-water mark for deliveries from stream queues. A stream consumer
/// replaying old data can always be fed faster than a socket drains, and each
/// queued delivery keeps the read buffer it is a slice of alive, so ten
/// replaying consumers at the general mark would hold tens of MiB; half a MiB
/// queued still keeps the writer's 512 KiB batches full. At most the low-water
/// mark, so that the writer's wake-up below it always finds room.
const STREAM_HIGH_WATER: usize = 512 * 1024;

/// Hidden test knob: `WARREN_TEST_OUTLET_WATERMARKS=<high>,<low>` (bytes) replaces
/// the water marks above, so that stress tests (`warren-tests/tests/stall.rs`)
/// drive the park / wake-on-drain path thousands of times with small messages.
/// Read once per process (not per connection, never on the delivery path);
/// anything unparsable keeps the defaults. Not a configuration option.
fn water_marks() -> (usize, usize) {
    static MARKS: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *MARKS.get_or_init(|| {
        std::env::var("WARREN_TEST_OUTLET_WATERMARKS")
            .ok()
            .and_then(|v| {
                let (h, l) = v.split_once(',')?;
                let (h, l) = (h.trim().parse().ok()?, l.trim().parse().ok()?);
                (l < h).then_some((h, l))
            })
            .unwrap_or((HIGH_WATER, LOW_WATER))
    })
}
/// Largest chunk gathered into one write.
const MAX_BATCH: usize = 512 * 1024;

/// How an adapter writes its items.
pub trait WireEncoder<T>: Send {
    /// Append `item`'s bytes to `out`.
    fn encode(&mut self, out: &mut BytesMut, item: &T);
    /// Append a heartbeat (sent when nothing else was written for half the
    /// heartbeat interval).
    fn heartbeat(&mut self, out: &mut BytesMut);
    /// Whether each item must reach the socket as a write of its own, followed
    /// by a flush per batch. A byte stream (TCP) wants `false`: a batch is one
    /// write. A message transport (WebSocket: one STOMP frame per WebSocket
    /// message, as RabbitMQ's Web-STOMP sends them) wants `true`: its writer
    /// turns each write into one message, and its sink buffers messages until
    /// flushed, so a batch still leaves in few syscalls.
    fn item_per_write(&self) -> bool {
        false
    }
}

/// One queued item, with the byte count it was accounted as.
enum Queued<T> {
    Item(T, usize),
    /// Write what is queued, then close the socket.
    Close,
}

/// Items waiting for the writer.
struct Fifo<T> {
    items: VecDeque<Queued<T>>,
    /// The writer has stopped: further items are dropped.
    closed: bool,
}

/// The connection state shared with queues and the writer task.
pub struct Outlet<T> {
    fifo: Mutex<Fifo<T>>,
    /// Signalled when `fifo` goes from empty to non-empty (a permit is stored if
    /// the writer is busy, so no wake-up is lost).
    ready: Notify,
    /// Approximate bytes queued and not yet written.
    pending: AtomicUsize,
    /// Queues that found this connection over its high-water mark and wait to be
    /// told it has room again.
    parked: Mutex<Vec<Weak<Queue>>>,
    /// `parked` is not empty. Set (SeqCst) after a queue is added, read (SeqCst)
    /// by the writer after lowering `pending`: see [`Outlet::has_room`].
    has_parked: AtomicBool,
    /// Water marks ([`HIGH_WATER`], [`LOW_WATER`] unless a test changed them).
    high_water: usize,
    low_water: usize,
    /// [`STREAM_HIGH_WATER`], at most `low_water`.
    stream_high_water: usize,
}

/// The writer's end of an [`Outlet`]: a token handed to [`run_writer`], so that
/// exactly one writer drains each outlet.
pub struct OutletReceiver(());

/// A drained batch deque keeps its allocation for the next batch unless a burst
/// made it larger than this many items; then it is freed, so a connection does
/// not hold on to a burst's worth of memory.
const KEEP_BATCH_CAPACITY: usize = 4096;
/// Buffers at most this large are freed when the connection goes idle.
const IDLE_FREE_ITEMS: usize = 16;
const IDLE_FREE_BYTES: usize = 8 * 1024;

impl<T> Outlet<T> {
    pub fn new() -> (Arc<Outlet<T>>, OutletReceiver) {
        let (high_water, low_water) = water_marks();
        (
            Arc::new(Outlet {
                fifo: Mutex::new(Fifo {
                    items: VecDeque::new(),
                    closed: false,
                }),
                ready: Notify::new(),
                pending: AtomicUsize::new(0),
                parked: Mutex::new(Vec::new()),
                has_parked: AtomicBool::new(false),
                high_water,
                low_water,
                stream_high_water: STREAM_HIGH_WATER.min(low_water),
            }),
            OutletReceiver(()),
        )
    }

    fn push(&self, item: Queued<T>) {
        let mut fifo = self.fifo.lock();
        if fifo.closed {
            return;
        }
        fifo.items.push_back(item);
        let first = fifo.items.len() == 1;
        drop(fifo);
        if first {
            self.ready.notify_one();
        }
    }

    /// Queue `item` for the writer; `size` is roughly its encoded size (what
    /// the backpressure accounting counts).
    pub fn send(&self, item: T, size: usize) {
        self.pending.fetch_add(size, Ordering::Relaxed);
        self.push(Queued::Item(item, size));
    }

    /// Write what is queued, then close the socket.
    pub fn close(&self) {
        self.push(Queued::Close);
    }

    /// Whether consumers on this connection may take more deliveries. If not, the
    /// queue is remembered and woken when the writer drains.
    /// A stream queue's consumers get a lower mark ([`STREAM_HIGH_WATER`]).
    pub fn has_room(&self, queue: &Arc<Queue>) -> bool {
        let high = match queue.is_stream() {
            true => self.stream_high_water,
            false => self.high_water,
        };
        if self.pending.load(Ordering::Relaxed) < high {
            return true;
        }
        let mut parked = self.parked.lock();
        if !parked.iter().any(|w| w.as_ptr() == Arc::as_ptr(queue)) {
            parked.push(Arc::downgrade(queue));
        }
        self.has_parked.store(true, Ordering::SeqCst);
        drop(parked);
        // Why look again: the writer may have drained the backlog between the
        // load above and the registration, and checked `has_parked` before we set
        // it; it would then never wake this queue. That is the issue-9 stall: a
        // client can read and ack a delivery before the writer task is back from
        // its write to lower `pending`, so the ack's `deliver()` sees the backlog
        // still over the mark and parks just as the writer drains it; if that
        // was the last ack (or the last publish), nothing ever calls `deliver()`
        // again. Registering first and re-reading second (both SeqCst, against
        // the writer's SeqCst `fetch_sub` then `has_parked` load) means that
        // either this load sees the drained backlog, or the writer sees
        // `has_parked` and wakes us. A stale registration left behind when we
        // return true only costs a spurious `deliver()` later.
        self.pending.load(Ordering::SeqCst) < high
    }

    fn wrote(&self, n: usize) {
        let before = self.pending.fetch_sub(n, Ordering::SeqCst);
        if before.saturating_sub(n) < self.low_water && self.has_parked.load(Ordering::SeqCst) {
            let queues = {
                let mut parked = self.parked.lock();
                self.has_parked.store(false, Ordering::SeqCst);
                std::mem::take(&mut *parked)
            };
            for q in queues.iter().filter_map(Weak::upgrade) {
                q.deliver();
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.fifo.lock().closed
    }

    /// Move everything queued into `into` (which must be empty), keeping both
    /// deques' allocations: the two swap roles batch after batch.
    fn take_all(&self, into: &mut VecDeque<Queued<T>>) {
        std::mem::swap(&mut self.fifo.lock().items, into);
    }

    /// The writer is gone: drop what is queued and refuse more.
    fn shut(&self) {
        let items = {
            let mut fifo = self.fifo.lock();
            fifo.closed = true;
            std::mem::take(&mut fifo.items)
        };
        drop(items);
    }
}

/// Run the writer until the connection closes. `heartbeat` is the negotiated
/// interval: a heartbeat goes out whenever nothing else was written for half of
/// it (as RabbitMQ does). `stats` gets the connection's `send_oct` and
/// `send_cnt`, added once per batch (one write, or one flush of per-item
/// writes), never per item.
///
/// A plain function returning an `async move` block rather than an `async
/// fn`: an async fn's future keeps its arguments' slots next to the locals it
/// moves them into (~120 B here), in every idle connection.
// (On purpose: see above.)
#[allow(clippy::manual_async_fn)]
pub fn run_writer<W, T, E>(
    mut socket: W,
    rx: OutletReceiver,
    outlet: Arc<Outlet<T>>,
    heartbeat: Duration,
    mut encoder: E,
    stats: Option<Arc<ConnectionStats>>,
) -> impl std::future::Future<Output = ()>
where
    W: AsyncWrite + Unpin,
    E: WireEncoder<T>,
{
    async move {
        // Held for the writer's life.
        let _rx = rx;
        let mut buf = BytesMut::new();
        let mut batch: VecDeque<Queued<T>> = VecDeque::new();
        // No timer without a heartbeat (a heap allocation and a timer-wheel
        // entry per idle connection).
        let mut beat = Beat::new(heartbeat);
        let mut wrote_since_tick = false;
        let per_item = encoder.item_per_write();
        let count = |octets: usize| {
            if let Some(s) = &stats {
                s.sent(octets);
            }
        };
        'run: loop {
            let woke = tokio::select! {
                biased;
                _ = outlet.ready.notified() => Woke::Items,
                _ = std::future::poll_fn(|cx| beat.poll(cx)) => Woke::Beat,
            };
            if let Woke::Beat = woke {
                if !wrote_since_tick {
                    encoder.heartbeat(&mut buf);
                    if socket.write_all(&buf).await.is_err() {
                        break;
                    }
                    if per_item && socket.flush().await.is_err() {
                        break;
                    }
                    count(buf.len());
                    buf.clear();
                }
                wrote_since_tick = false;
                continue;
            }
            outlet.take_all(&mut batch);
            let mut closing = false;
            while !batch.is_empty() && !closing {
                let mut accounted = 0;
                // Octets of this batch's per-item writes (counted at the flush).
                let mut item_octets = 0;
                while buf.len() < MAX_BATCH {
                    match batch.pop_front() {
                        None => break,
                        Some(Queued::Item(item, size)) => {
                            encoder.encode(&mut buf, &item);
                            accounted += size;
                            if per_item {
                                if socket.write_all(&buf).await.is_err() {
                                    break 'run;
                                }
                                item_octets += buf.len();
                                buf.clear();
                                wrote_since_tick = true;
                            }
                        }
                        Some(Queued::Close) => {
                            closing = true;
                            break;
                        }
                    }
                }
                if per_item && accounted > 0 && socket.flush().await.is_err() {
                    break 'run;
                }
                count(item_octets);
                if !buf.is_empty() {
                    if socket.write_all(&buf).await.is_err() {
                        break 'run;
                    }
                    count(buf.len());
                    wrote_since_tick = true;
                    if buf.capacity() > 4 * MAX_BATCH {
                        buf = BytesMut::new();
                    } else {
                        buf.clear();
                    }
                }
                outlet.wrote(accounted);
            }
            // Keep buffers sized for the traffic, but give back what an idle
            // connection would otherwise hold forever: when nothing more is queued
            // after a small batch, free the batch deque and the output buffer (they
            // are reallocated, cheaply, when traffic resumes). Under load batches
            // are large and nothing is freed.
            let idle = outlet.fifo.lock().items.is_empty();
            if batch.capacity() > KEEP_BATCH_CAPACITY
                || (idle && batch.capacity() <= IDLE_FREE_ITEMS)
            {
                batch = VecDeque::new();
            }
            if idle && buf.capacity() <= IDLE_FREE_BYTES {
                buf = BytesMut::new();
            }
            if closing {
                let _ = socket.flush().await;
                let _ = socket.shutdown().await;
                break;
            }
        }
        outlet.shut();
    }
}

/// What woke the writer.
enum Woke {
    Items,
    Beat,
}

/// The writer's heartbeat timer: a tick every half heartbeat interval (at
/// least 500 ms), as an `Interval` with `MissedTickBehavior::Delay` gives
/// them, but polled only once it has fired. Every delivery wakes the writer;
/// re-polling the timer on each wake-up (what `select!` over an `Interval`
/// does) costs a timer-entry check and a waker registration per delivery. Its
/// waker stays registered between polls: it is the writer's task's, which
/// does not change. 16 bytes in the writer's future (every idle MQTT
/// connection holds one, without a heartbeat; the `Interval` was 32).
struct Beat {
    /// `None` without a heartbeat.
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    period_ms: u32,
    /// Polled since the last reset (its waker is registered).
    armed: bool,
}

impl Beat {
    fn new(heartbeat: Duration) -> Beat {
        let period = (heartbeat / 2).max(Duration::from_millis(500));
        Beat {
            sleep: (!heartbeat.is_zero()).then(|| Box::pin(tokio::time::sleep(period))),
            period_ms: u32::try_from(period.as_millis()).unwrap_or(u32::MAX),
            armed: false,
        }
    }

    /// Ready once per period.
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::task::Poll;
        let Some(sleep) = self.sleep.as_mut() else {
            return Poll::Pending;
        };
        if self.armed && !sleep.is_elapsed() {
            return Poll::Pending;
        }
        if sleep.as_mut().poll(cx).is_pending() {
            self.armed = true;
            return Poll::Pending;
        }
        let period = Duration::from_millis(u64::from(self.period_ms));
        sleep.as_mut().reset(tokio::time::Instant::now() + period);
        self.armed = false;
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Broker, Consumer, ConsumerSink, FieldTable, Message, QueueOptions, QueuedMessage, ShortStr,
    };
    use bytes::Bytes;
    use std::sync::atomic::AtomicU64;

    /// A consumer that takes a message only when the outlet has room (what the
    /// AMQP sink does, minus the protocol).
    struct Sink {
        outlet: Arc<Outlet<()>>,
        taken: AtomicUsize,
    }

    impl ConsumerSink for Sink {
        fn offer(&self, _c: &Arc<Consumer>, queue: &Arc<Queue>, _m: &QueuedMessage) -> bool {
            if !self.outlet.has_room(queue) {
                return false;
            }
            self.taken.fetch_add(1, Ordering::Relaxed);
            true
        }
        fn cancelled(&self, _c: &Arc<Consumer>) {}
    }

    struct Fixture {
        _broker: Arc<Broker>,
        queue: Arc<Queue>,
        outlet: Arc<Outlet<()>>,
        sink: Arc<Sink>,
        _dir: crate::testing::ScratchDir,
    }

    fn fixture(name: &str) -> Fixture {
        let (broker, dir) = crate::testing::scratch_broker("outlet-test", name);
        let vhost = broker.ensure_vhost("/");
        let (queue, _) = vhost
            .declare_queue(
                Some(ShortStr::from(name)),
                QueueOptions {
                    durable: false,
                    exclusive: false,
                    auto_delete: false,
                    arguments: FieldTable::new(),
                },
                false,
                1,
            )
            .expect("declare queue");
        let (outlet, _rx) = Outlet::<()>::new();
        let sink = Arc::new(Sink {
            outlet: outlet.clone(),
            taken: AtomicUsize::new(0),
        });
        let consumer = Consumer::new(
            ShortStr::from("c"),
            true,
            false,
            FieldTable::new(),
            crate::queue::ChannelRef {
                connection: 1,
                number: 1,
            },
            0,
            sink.clone(),
        );
        consumer.activate();
        queue.add_consumer(consumer).expect("add consumer");
        Fixture {
            _broker: broker,
            queue,
            outlet,
            sink,
            _dir: dir,
        }
    }

    fn message() -> Arc<Message> {
        Message::new(
            ShortStr::from(""),
            ShortStr::from("k"),
            Bytes::new(),
            Bytes::from_static(b"x"),
        )
    }

    /// Items as raw bytes.
    struct Raw;

    impl WireEncoder<Vec<u8>> for Raw {
        fn encode(&mut self, out: &mut BytesMut, item: &Vec<u8>) {
            out.extend_from_slice(item);
        }
        fn heartbeat(&mut self, _out: &mut BytesMut) {}
    }

    #[tokio::test]
    async fn the_writer_counts_octets_once_per_batch() {
        use crate::stats::{ConnectionField, ConnectionStats};
        use tokio::io::AsyncReadExt;
        let (outlet, rx) = Outlet::<Vec<u8>>::new();
        let (socket, mut peer) = tokio::io::duplex(1 << 16);
        let stats = Arc::new(ConnectionStats::default());
        // Queued before the writer runs: one batch, one write.
        outlet.send(vec![1; 10], 10);
        outlet.send(vec![2; 5], 5);
        outlet.close();
        run_writer(socket, rx, outlet, Duration::ZERO, Raw, Some(stats.clone())).await;
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.expect("read");
        assert_eq!(got.len(), 15);
        assert_eq!(stats.get(ConnectionField::SendOct), 15);
        assert_eq!(stats.get(ConnectionField::SendCnt), 1);
    }

    /// Items as raw bytes; a heartbeat is a dot.
    struct Dots;

    impl WireEncoder<Vec<u8>> for Dots {
        fn encode(&mut self, out: &mut BytesMut, item: &Vec<u8>) {
            out.extend_from_slice(item);
        }
        fn heartbeat(&mut self, out: &mut BytesMut) {
            out.extend_from_slice(b".");
        }
    }

    /// The heartbeat timer, polled only once it fired: an idle writer still
    /// beats every half interval, and a writer that keeps writing does not.
    #[tokio::test]
    async fn heartbeats_only_when_idle() {
        use tokio::io::AsyncReadExt;
        // Idle for 1.3 heartbeat periods of 500 ms each... twice.
        let (outlet, rx) = Outlet::<Vec<u8>>::new();
        let (socket, mut peer) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(run_writer(
            socket,
            rx,
            outlet.clone(),
            Duration::from_secs(1),
            Dots,
            None,
        ));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        outlet.close();
        writer.await.expect("writer");
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.expect("read");
        assert!(!got.is_empty() && got.len() <= 2, "{got:?}");
        assert!(got.iter().all(|&b| b == b'.'), "{got:?}");

        // Busy: an item every 100 ms for 1.3 s, no heartbeat.
        let (outlet, rx) = Outlet::<Vec<u8>>::new();
        let (socket, mut peer) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(run_writer(
            socket,
            rx,
            outlet.clone(),
            Duration::from_secs(1),
            Dots,
            None,
        ));
        for _ in 0..13 {
            outlet.send(b"x".to_vec(), 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        outlet.close();
        writer.await.expect("writer");
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, vec![b'x'; 13]);
    }

    #[test]
    fn a_parked_queue_is_woken_when_the_backlog_drains() {
        let f = fixture("park-wake");
        let high = f.outlet.high_water;
        f.outlet.pending.store(high, Ordering::Relaxed);
        f.queue.publish(message());
        assert_eq!(f.sink.taken.load(Ordering::Relaxed), 0, "over high water");
        assert_eq!(f.queue.message_count(), 1);
        // Draining to just above low water wakes nobody yet...
        f.outlet.wrote(high - f.outlet.low_water);
        assert_eq!(f.queue.message_count(), 1);
        // ...below it, the queue delivers again.
        f.outlet.wrote(1);
        assert_eq!(f.sink.taken.load(Ordering::Relaxed), 1);
        assert_eq!(f.queue.message_count(), 0);
    }

    /// The lost wake-up of issue 9: a queue checking `has_room` while the writer
    /// drains the last of the backlog must either see the room or be woken. Each
    /// round races a queue's offer against the writer's final `wrote`, with the
    /// writer's start staggered so the race window is swept.
    #[test]
    fn no_lost_wake_up_when_the_writer_drains_during_has_room() {
        let f = Arc::new(fixture("race"));
        let high = f.outlet.high_water;
        let rounds: u64 = 6_000;
        let go = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let writer = {
            let (f, go, done) = (f.clone(), go.clone(), done.clone());
            std::thread::spawn(move || {
                for round in 1..=rounds {
                    while go.load(Ordering::Acquire) < round {
                        std::hint::spin_loop();
                    }
                    for _ in 0..(round * 7919) % 400 {
                        std::hint::spin_loop();
                    }
                    f.outlet.wrote(high);
                    done.store(round, Ordering::Release);
                }
            })
        };
        for round in 1..=rounds {
            // A ready message the queue could not deliver, and a full outlet
            // that nobody is registered with yet.
            f.outlet.pending.store(high, Ordering::SeqCst);
            f.queue.publish(message());
            f.outlet.parked.lock().clear();
            f.outlet.has_parked.store(false, Ordering::SeqCst);
            go.store(round, Ordering::Release);
            f.queue.deliver();
            while done.load(Ordering::Acquire) < round {
                std::hint::spin_loop();
            }
            // The writer is idle now with nothing pending: if the message is
            // still there, nothing will ever deliver it.
            assert_eq!(
                f.queue.message_count(),
                0,
                "round {round}: message stranded (lost wake-up)"
            );
        }
        writer.join().expect("writer thread");
        assert_eq!(f.sink.taken.load(Ordering::Relaxed), rounds as usize);
    }
}
