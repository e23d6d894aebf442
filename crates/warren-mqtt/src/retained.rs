//! Retained messages: an index per vhost, and the file that makes them durable.
//!
//! **Index.** A trie of topic levels. A subscribe walks only the branches its
//! filter can match: an exact filter costs its number of levels, `a/+/c`
//! visits a's children, `a/#` the subtree under `a`. So a million retained
//! topics elsewhere in the tree do not slow a subscribe (RabbitMQ 3.10 looks
//! retained messages up by exact topic only, so wildcard subscribers get none).
//!
//! **File.** `<data dir>/mqtt/retained.log`: records `[len u32 LE][crc32c u32 LE]
//! [payload]`, one per retained publish (an empty payload is a deletion). A
//! writer thread appends whatever is pending with one write and one fdatasync
//! (group commit). At start the file is replayed (a torn or corrupt tail ends
//! it) and rewritten with only the live messages (temp file, fsync, rename);
//! the writer thread rewrites it the same way while running once it holds more
//! than twice what is live (and at least [`COMPACT_MIN`]), so devices that
//! update their retained state forever do not fill the disk.
//! Each `put` gets a ticket; the writer publishes the highest ticket it has
//! fsynced, so a PUBACK for a retained publish can wait for it exactly as it
//! waits for the message log.
//!
//! The file also holds persistent sessions' durable state (`session_state.rs`:
//! incoming QoS 2 packet ids, shared subscriptions), records tagged apart from
//! retained messages, loaded and compacted with them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use tracing::{info, warn};

use crate::packet::QoS;
use crate::properties::{Context, Properties};
use crate::session_state::{self, Change, SessionState};

/// One retained message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub topic: Bytes,
    pub qos: QoS,
    pub payload: Bytes,
    /// MQTT 5 properties kept with it (content type, user properties,
    /// message expiry, ...); empty for 3.1.1 publishers.
    pub properties: Properties,
    /// When it was retained (ms since the epoch): message expiry counts from here.
    pub stored_at: u64,
}

impl Retained {
    /// Whether its MQTT 5 message expiry interval has passed.
    pub fn expired(&self, now: u64) -> bool {
        matches!(self.properties.message_expiry_interval,
            Some(s) if self.stored_at + u64::from(s) * 1000 <= now)
    }
}

#[derive(Default)]
struct Node {
    children: HashMap<Bytes, Node>,
    message: Option<Arc<Retained>>,
}

impl Node {
    /// Set (or with `None` clear) the message at `levels`; prunes emptied
    /// branches. Returns the count change (+1, 0, -1).
    fn set(&mut self, levels: &[Bytes], msg: Option<Arc<Retained>>) -> i64 {
        match levels.split_first() {
            None => {
                let had = self.message.is_some();
                let has = msg.is_some();
                self.message = msg;
                has as i64 - had as i64
            }
            Some((first, rest)) => {
                if msg.is_none() && !self.children.contains_key(first) {
                    return 0;
                }
                let child = self.children.entry(first.clone()).or_default();
                let d = child.set(rest, msg);
                if child.message.is_none() && child.children.is_empty() {
                    self.children.remove(first);
                }
                d
            }
        }
    }

    fn collect_all(&self, out: &mut Vec<Arc<Retained>>) {
        if let Some(m) = &self.message {
            out.push(m.clone());
        }
        for c in self.children.values() {
            c.collect_all(out);
        }
    }

    fn collect(&self, filter: &[&[u8]], root: bool, out: &mut Vec<Arc<Retained>>) {
        let Some((first, rest)) = filter.split_first() else {
            if let Some(m) = &self.message {
                out.push(m.clone());
            }
            return;
        };
        match *first {
            b"#" => {
                // `a/#` matches `a` itself too.
                if let Some(m) = &self.message {
                    if !root {
                        out.push(m.clone());
                    }
                }
                for (k, c) in &self.children {
                    if !(root && k.first() == Some(&b'$')) {
                        c.collect_all(out);
                    }
                }
            }
            b"+" => {
                for (k, c) in &self.children {
                    if !(root && k.first() == Some(&b'$')) {
                        c.collect(rest, false, out);
                    }
                }
            }
            level => {
                if let Some(c) = self.children.get(level) {
                    c.collect(rest, false, out);
                }
            }
        }
    }
}

fn levels(topic: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in topic.iter().enumerate() {
        if c == b'/' {
            out.push(topic.slice(start..i));
            start = i + 1;
        }
    }
    out.push(topic.slice(start..));
    out
}

/// The file is not rewritten while running below this size.
const COMPACT_MIN: u64 = 64 * 1024 * 1024;

type Vhosts = Arc<RwLock<HashMap<String, Arc<RwLock<Tree>>>>>;
/// Persistent sessions' durable state by (vhost, client id).
type Sessions = Arc<Mutex<HashMap<(String, Bytes), SessionState>>>;

/// A vhost's retained messages.
#[derive(Default)]
struct Tree {
    root: Node,
    count: u64,
}

/// Every vhost's retained messages, and the writer of their file.
pub struct RetainedStore {
    vhosts: Vhosts,
    sessions: Sessions,
    writer: Option<Mutex<Writer>>,
    /// The highest ticket on disk (everything is "on disk" in memory mode).
    durable: tokio::sync::watch::Receiver<u64>,
    /// Memory mode keeps the sender, so waiters never see a closed channel.
    _memory: Option<tokio::sync::watch::Sender<u64>>,
    /// The writer thread, joined on drop: it may be compacting (temp file,
    /// rename), and a store opened on the same directory right after must
    /// not race it for the temp file.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RetainedStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop once it has written
        // what it was given.
        drop(self.writer.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The sending side of the writer thread; tickets are assigned under its lock,
/// so they reach the thread in order.
struct Writer {
    tx: mpsc::Sender<(u64, Vec<u8>)>,
    next: u64,
}

impl RetainedStore {
    /// In memory only (tests).
    pub fn memory() -> RetainedStore {
        let (tx, durable) = tokio::sync::watch::channel(u64::MAX);
        RetainedStore {
            vhosts: Arc::new(RwLock::new(HashMap::new())),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            writer: None,
            durable,
            _memory: Some(tx),
            thread: None,
        }
    }

    /// Open (or create) `<dir>/mqtt/retained.log`, load it, compact it and
    /// start its writer thread.
    pub fn open(data_dir: &Path) -> std::io::Result<RetainedStore> {
        Self::open_with(data_dir, COMPACT_MIN)
    }

    /// [`RetainedStore::open`] with another compaction floor (tests).
    pub fn open_with(data_dir: &Path, compact_min: u64) -> std::io::Result<RetainedStore> {
        let dir = data_dir.join("mqtt");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("retained.log");
        let store = RetainedStore::memory();
        let mut loaded = 0u64;
        if let Ok(mut f) = File::open(&path) {
            let mut data = Vec::new();
            f.read_to_end(&mut data)?;
            let mut buf = Bytes::from(data);
            while let Some(mut rec) = next_record(&mut buf) {
                if rec.starts_with(&session_state::TAG.to_be_bytes()) {
                    rec.advance(2);
                    match session_state::decode(rec) {
                        Some((vhost, client, change)) => {
                            store.apply_session(vhost, client, &change);
                        }
                        None => break,
                    }
                    continue;
                }
                match decode_record(rec) {
                    Some((vhost, msg)) => {
                        loaded += 1;
                        store.apply(&vhost, msg);
                    }
                    None => break,
                }
            }
            if buf.has_remaining() {
                warn!(
                    bytes = buf.remaining(),
                    "retained-message file: dropped a torn or corrupt tail"
                );
            }
        }
        // Sessions that were connected when the broker stopped: their expiry
        // counts from now (their connections closed with it).
        let now = warren_core::queue::now_ms();
        for state in store.sessions.lock().values_mut() {
            if let Some(session_state::Expiry::Connected(ms)) = state.expiry {
                state.expiry = Some(session_state::Expiry::At(now.saturating_add(ms)));
            }
        }
        let (file, live, size) = compact(&store.vhosts, &store.sessions, &path)?;
        if loaded > 0 || live > 0 {
            info!(
                records = loaded,
                retained = live,
                bytes = size,
                "MQTT retained messages loaded"
            );
        }
        let (tx, rx) = mpsc::channel::<(u64, Vec<u8>)>();
        let (done, durable) = tokio::sync::watch::channel(0u64);
        let thread = std::thread::Builder::new()
            .name("warren-mqtt-retained".into())
            .spawn({
                let vhosts = store.vhosts.clone();
                let sessions = store.sessions.clone();
                move || write_loop(file, size, compact_min, path, vhosts, sessions, rx, done)
            })?;
        Ok(RetainedStore {
            writer: Some(Mutex::new(Writer { tx, next: 1 })),
            durable,
            vhosts: store.vhosts.clone(),
            sessions: store.sessions.clone(),
            _memory: None,
            thread: Some(thread),
        })
    }

    fn tree(&self, vhost: &str) -> Arc<RwLock<Tree>> {
        if let Some(t) = self.vhosts.read().get(vhost) {
            return t.clone();
        }
        self.vhosts
            .write()
            .entry(vhost.to_string())
            .or_default()
            .clone()
    }

    fn apply(&self, vhost: &str, msg: Retained) {
        let topic = msg.topic.clone();
        let lv = levels(&topic);
        let value = (!msg.payload.is_empty()).then(|| Arc::new(msg));
        let tree = self.tree(vhost);
        let mut t = tree.write();
        let d = t.root.set(&lv, value);
        t.count = (t.count as i64 + d) as u64;
    }

    /// Retain `msg` (an empty payload clears the topic's retained message).
    /// Returns the ticket [`RetainedStore::durable`] reaches once it is on disk.
    ///
    /// The index is updated before the record is queued for the writer, under
    /// the writer's lock: a compaction's snapshot then holds every record the
    /// writer received before it, so none is lost with the old file.
    pub fn put(&self, vhost: &str, msg: Retained) -> u64 {
        let Some(w) = &self.writer else {
            self.apply(vhost, msg);
            return 0;
        };
        let mut rec = Vec::with_capacity(64 + msg.payload.len());
        encode_record(vhost, &msg, &mut rec);
        let mut w = w.lock();
        self.apply(vhost, msg);
        let ticket = w.next;
        w.next += 1;
        let _ = w.tx.send((ticket, rec));
        ticket
    }

    /// Apply a change to a session's state; returns whether it changed.
    fn apply_session(&self, vhost: String, client: Bytes, change: &Change) -> bool {
        let mut sessions = self.sessions.lock();
        let key = (vhost, client);
        let changed = match sessions.get_mut(&key) {
            Some(s) => s.apply(change),
            None => {
                let mut s = SessionState::default();
                let changed = s.apply(change);
                if changed {
                    sessions.insert(key.clone(), s);
                }
                changed
            }
        };
        if sessions.get(&key).is_some_and(|s| s.is_empty()) {
            sessions.remove(&key);
        }
        changed
    }

    /// Change a persistent session's durable state. Returns the ticket
    /// [`RetainedStore::durable`] reaches once it is on disk (0 when nothing
    /// changed).
    pub fn put_session(&self, vhost: &str, client: &Bytes, change: Change) -> u64 {
        let Some(w) = &self.writer else {
            self.apply_session(vhost.to_string(), client.clone(), &change);
            return 0;
        };
        // As `put`: the map changes under the writer's lock.
        let mut w = w.lock();
        if !self.apply_session(vhost.to_string(), client.clone(), &change) {
            return 0;
        }
        let mut rec = Vec::new();
        frame(&session_state::encode(vhost, client, &change), &mut rec);
        let ticket = w.next;
        w.next += 1;
        let _ = w.tx.send((ticket, rec));
        ticket
    }

    /// A persistent session's durable state, if it has any.
    pub fn session(&self, vhost: &str, client: &Bytes) -> Option<SessionState> {
        self.sessions
            .lock()
            .get(&(vhost.to_string(), client.clone()))
            .cloned()
    }

    /// Sessions whose MQTT 5 expiry has passed by `now` (the caller forgets them).
    pub fn expired_sessions(&self, now: u64) -> Vec<(String, Bytes)> {
        self.sessions
            .lock()
            .iter()
            .filter(|(_, s)| s.expired(now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether some stored session in `vhost` is a member of the shared
    /// subscription `filter` (the full `$share/…` filter).
    pub fn shared_in_use(&self, vhost: &str, filter: &[u8]) -> bool {
        self.sessions
            .lock()
            .iter()
            .any(|((v, _), s)| v == vhost && s.shared.iter().any(|(f, _, _)| f == filter))
    }

    /// The highest ticket on disk, as a watch (for acks waiting on it).
    pub fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.clone()
    }

    pub fn durable_ticket(&self) -> u64 {
        *self.durable.borrow()
    }

    /// The retained messages matching a topic filter (not expired).
    pub fn matching(&self, vhost: &str, filter: &[u8]) -> Vec<Arc<Retained>> {
        let Some(tree) = self.vhosts.read().get(vhost).cloned() else {
            return Vec::new();
        };
        let f: Vec<&[u8]> = filter.split(|&c| c == b'/').collect();
        let mut out = Vec::new();
        tree.read().root.collect(&f, true, &mut out);
        let now = warren_core::queue::now_ms();
        out.retain(|m| !m.expired(now));
        out
    }

    /// How many messages a vhost retains.
    pub fn count(&self, vhost: &str) -> u64 {
        self.vhosts.read().get(vhost).map_or(0, |t| t.read().count)
    }
}

/// Write the live messages to a new file and swap it in (temp file, fsync,
/// rename). Returns the file opened for appending, the live count and its size.
fn compact(vhosts: &Vhosts, sessions: &Sessions, path: &Path) -> std::io::Result<(File, u64, u64)> {
    let tmp = path.with_extension("log.compact");
    let mut f = File::create(&tmp)?;
    let mut out = Vec::new();
    let (mut live, mut size) = (0u64, 0u64);
    let trees: Vec<(String, Arc<RwLock<Tree>>)> = vhosts
        .read()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (vhost, tree) in trees {
        let mut all = Vec::new();
        tree.read().root.collect_all(&mut all);
        for m in all {
            live += 1;
            encode_record(&vhost, &m, &mut out);
            if out.len() > 1 << 20 {
                f.write_all(&out)?;
                size += out.len() as u64;
                out.clear();
            }
        }
    }
    let states: Vec<BytesMut> = sessions
        .lock()
        .iter()
        .flat_map(|((vhost, client), s)| {
            s.changes()
                .map(|c| session_state::encode(vhost, client, &c))
                .collect::<Vec<_>>()
        })
        .collect();
    for p in states {
        frame(&p, &mut out);
    }
    f.write_all(&out)?;
    size += out.len() as u64;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let file = OpenOptions::new().append(true).open(path)?;
    Ok((file, live, size))
}

#[allow(clippy::too_many_arguments)]
fn write_loop(
    mut file: File,
    mut size: u64,
    compact_min: u64,
    path: PathBuf,
    vhosts: Vhosts,
    sessions: Sessions,
    rx: mpsc::Receiver<(u64, Vec<u8>)>,
    done: tokio::sync::watch::Sender<u64>,
) {
    // What the file held after its last compaction: it is rewritten once it
    // has grown past twice that (and past `compact_min`).
    let mut base = size;
    let mut batch = Vec::new();
    while let Ok((mut last, first)) = rx.recv() {
        batch.clear();
        batch.extend_from_slice(&first);
        while let Ok((t, more)) = rx.try_recv() {
            batch.extend_from_slice(&more);
            last = t;
        }
        match file.write_all(&batch).and_then(|_| file.sync_data()) {
            Ok(()) => {
                size += batch.len() as u64;
                done.send_replace(last);
            }
            // Acks waiting for these stay unanswered (as the message log's
            // would): the client resends them.
            Err(e) => warn!(path = %path.display(), "cannot write retained messages: {}", e),
        }
        if size > compact_min.max(2 * base) {
            match compact(&vhosts, &sessions, &path) {
                Ok((f, live, new_size)) => {
                    info!(
                        from = size,
                        to = new_size,
                        retained = live,
                        "MQTT retained-message file compacted"
                    );
                    file = f;
                    size = new_size;
                    base = new_size;
                }
                Err(e) => {
                    warn!(path = %path.display(), "cannot compact retained messages: {}", e);
                    base = size;
                }
            }
        }
    }
}

fn next_record(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 8 {
        return None;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if buf.remaining() < 8 + len {
        return None;
    }
    let payload = buf.slice(8..8 + len);
    if crc32c::crc32c(&payload) != crc {
        return None;
    }
    buf.advance(8 + len);
    Some(payload)
}

fn encode_record(vhost: &str, m: &Retained, out: &mut Vec<u8>) {
    let mut p = BytesMut::new();
    p.put_u16(vhost.len() as u16);
    p.put_slice(vhost.as_bytes());
    p.put_u16(m.topic.len() as u16);
    p.put_slice(&m.topic);
    p.put_u8(m.qos as u8);
    p.put_u64(m.stored_at);
    m.properties.encode(&mut p);
    p.put_slice(&m.payload);
    frame(&p, out);
}

/// `[len u32 LE][crc32c u32 LE][payload]`.
fn frame(p: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(p).to_le_bytes());
    out.extend_from_slice(p);
}

fn decode_record(mut b: Bytes) -> Option<(String, Retained)> {
    let take = |b: &mut Bytes| -> Option<Bytes> {
        if b.remaining() < 2 {
            return None;
        }
        let n = b.get_u16() as usize;
        (b.remaining() >= n).then(|| b.split_to(n))
    };
    let vhost = String::from_utf8(take(&mut b)?.to_vec()).ok()?;
    let topic = take(&mut b)?;
    if b.remaining() < 9 {
        return None;
    }
    let qos = QoS::from_u8(b.get_u8())?;
    let stored_at = b.get_u64();
    let properties = Properties::decode(&mut b, Context::Publish).ok()?;
    Some((
        vhost,
        Retained {
            topic,
            qos,
            payload: b,
            properties,
            stored_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, body: &str) -> Retained {
        Retained {
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            qos: QoS::AtLeastOnce,
            payload: Bytes::copy_from_slice(body.as_bytes()),
            properties: Properties::default(),
            stored_at: warren_core::queue::now_ms(),
        }
    }

    fn topics(s: &RetainedStore, f: &str) -> Vec<String> {
        let mut v: Vec<String> = s
            .matching("/", f.as_bytes())
            .iter()
            .map(|m| String::from_utf8_lossy(&m.topic).into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn wildcards_and_clearing() {
        let s = RetainedStore::memory();
        for t in ["a", "a/b", "a/b/c", "a/x/c", "$SYS/up", "b"] {
            s.put("/", msg(t, "1"));
        }
        assert_eq!(topics(&s, "a/+/c"), ["a/b/c", "a/x/c"]);
        assert_eq!(topics(&s, "a/#"), ["a", "a/b", "a/b/c", "a/x/c"]);
        assert_eq!(topics(&s, "#"), ["a", "a/b", "a/b/c", "a/x/c", "b"]);
        assert_eq!(topics(&s, "+"), ["a", "b"]);
        assert_eq!(topics(&s, "$SYS/#"), ["$SYS/up"]);
        assert_eq!(topics(&s, "a/b"), ["a/b"]);
        assert_eq!(s.count("/"), 6);
        s.put("/", msg("a/b", ""));
        assert_eq!(topics(&s, "a/b"), Vec::<String>::new());
        assert_eq!(s.count("/"), 5);
        s.put("/", msg("nothing/here", ""));
        assert_eq!(s.count("/"), 5);
        assert!(s.matching("other", b"#").is_empty());
    }

    /// Many retained topics elsewhere in the tree must not slow a subscribe:
    /// the lookup walks only the branches its filter can match. (Run with
    /// `WARREN_RETAINED_TOPICS=1000000` for the million.)
    #[test]
    fn many_retained_topics_do_not_slow_a_narrow_subscribe() {
        let n: usize = std::env::var("WARREN_RETAINED_TOPICS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let s = RetainedStore::memory();
        for i in 0..n {
            s.put("/", msg(&format!("devices/{}/state", i), "x"));
        }
        s.put("/", msg("alerts/a/1", "y"));
        s.put("/", msg("alerts/b/1", "z"));
        assert_eq!(s.count("/"), n as u64 + 2);
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            assert_eq!(s.matching("/", b"alerts/+/1").len(), 2);
            assert_eq!(s.matching("/", b"devices/42/state").len(), 1);
        }
        let per = start.elapsed() / 1000;
        // A scan of n topics would take milliseconds; the index takes microseconds.
        assert!(
            per < std::time::Duration::from_millis(5),
            "{per:?} per subscribe"
        );
    }

    #[test]
    fn the_file_is_compacted_while_running() {
        let dir = std::env::temp_dir().join(format!("warren-retained-c-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("mqtt").join("retained.log");
        {
            let s = RetainedStore::open_with(&dir, 16 * 1024).expect("open");
            let body = "x".repeat(200);
            for i in 0..2000 {
                s.put("/", msg("state/1", &format!("{i}{body}")));
            }
            s.put("/", msg("state/2", "other"));
            let last = s.put("/", msg("state/1", "final"));
            let mut durable = s.durable();
            while *durable.borrow_and_update() < last {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            // 2000 records of ~230 bytes were written; a compaction keeps a
            // few. (It runs right after the batch that crossed the limit was
            // acknowledged: wait for it.)
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut len = u64::MAX;
            while std::time::Instant::now() < deadline {
                len = std::fs::metadata(&file)
                    .map(|m| m.len())
                    .unwrap_or(u64::MAX);
                if len < 64 * 1024 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert!(len < 64 * 1024, "not compacted: {len} bytes");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let s = RetainedStore::open(&dir).expect("reopen");
        assert_eq!(topics(&s, "#"), ["state/1", "state/2"]);
        assert_eq!(&s.matching("/", b"state/1")[0].payload[..], b"final");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn survives_reopen_and_compacts() {
        let dir = std::env::temp_dir().join(format!("warren-retained-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = RetainedStore::open(&dir).expect("open");
            s.put("/", msg("a/b", "x"));
            s.put("/", msg("a/c", "y"));
            s.put("/", msg("a/c", ""));
            let last = s.put("v2", msg("q", "z"));
            let mut durable = s.durable();
            while *durable.borrow_and_update() < last {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let s = RetainedStore::open(&dir).expect("reopen");
        assert_eq!(topics(&s, "#"), ["a/b"]);
        assert_eq!(s.matching("v2", b"q").len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn session_state_survives_reopen_and_compaction() {
        use crate::packet::SubscriptionOptions;
        let dir = std::env::temp_dir().join(format!("warren-sessions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        let shared = vec![(
            Bytes::from_static(b"$share/g/t"),
            SubscriptionOptions::qos(QoS::AtLeastOnce),
            None,
        )];
        let mut state = SessionState::default();
        state.incoming_qos2.extend([3, 4]);
        state.shared = shared.clone();
        {
            // A tiny compaction floor: the writer rewrites the file as it goes.
            let s = RetainedStore::open_with(&dir, 1).expect("open");
            s.put("/", msg("kept", "x"));
            for c in [
                Change::Received(3),
                Change::Received(5),
                Change::Shared(shared.clone()),
                Change::Released(5),
                Change::Received(4),
            ] {
                s.put_session("/", &a, c);
            }
            s.put_session("/", &b, Change::Received(1));
            // Unchanged: nothing to write.
            assert_eq!(s.put_session("/", &b, Change::Received(1)), 0);
            let last = s.put_session("/", &b, Change::Forget);
            assert!(last > 0);
            let mut durable = s.durable();
            while *durable.borrow_and_update() < last {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let s = RetainedStore::open(&dir).expect("reopen");
        assert_eq!(s.session("/", &a), Some(state));
        assert_eq!(s.session("/", &b), None);
        assert_eq!(topics(&s, "#"), ["kept"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
