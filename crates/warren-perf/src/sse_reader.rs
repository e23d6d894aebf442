//! The receiving side of `sse-fanout --transport sse`: all N feeds read by one
//! thread from one epoll set, instead of a tokio task per subscriber.
//!
//! Why: the load generator shares the machine's cores with the broker, and
//! every cycle it spends is a cycle the broker does not get during the round
//! it is measuring. A task per feed costs a wake-up, a trip through the
//! scheduler (often a cross-thread futex wake) and an allocation per event;
//! here a ready socket costs one `recvmsg` and a parse into reused buffers.
//!
//! It also measures the broker's side on its own: every socket has
//! `SO_TIMESTAMPING` (software receive stamps) on, so each read carries the
//! kernel's time of the segment's arrival on loopback, which is taken inside
//! the broker's `writev`. "Written to all" (publish until the broker wrote the
//! last feed) therefore does not include how late this thread got to read it.

use crate::client::{Error, Result};
use crate::rounds::Arrivals;
use crate::seq::{Seen, SeqTracker};
use crate::web::{SseDecoder, SseSubscriber};
use crate::web_fanout::parse_stamp_text;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Per subscriber: latency (ns) of the latest message as read, and as the
/// kernel stamped its arrival (0 when no stamp came with it).
pub(crate) struct Latest {
    pub read: Vec<AtomicU64>,
    pub written: Vec<AtomicU64>,
}

impl Latest {
    pub fn new(n: usize) -> Latest {
        Latest {
            read: (0..n).map(|_| AtomicU64::new(0)).collect(),
            written: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// What the reader found, once stopped.
#[derive(Default)]
pub(crate) struct ReaderOutcome {
    pub trackers: Vec<SeqTracker>,
    pub reordered: u64,
    pub unexpected: u64,
    /// Feeds the broker still held open at the end.
    pub open: usize,
}

/// Largest read at a time (one round's event is ~100 bytes per feed).
const READ_BUF: usize = 64 * 1024;
/// epoll events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// How often the thread looks at the stop flag while idle.
const POLL_MS: i32 = 20;

struct Feed {
    fd: OwnedFd,
    sub: SseDecoder,
    tracker: SeqTracker,
}

/// Start the reader thread on `subs` (taken out of tokio). It runs until
/// `stop` is set, then reports.
pub(crate) fn spawn(
    subs: Vec<SseSubscriber>,
    arrivals: Arc<Arrivals<Latest>>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<ReaderOutcome>>> {
    let mut feeds = Vec::with_capacity(subs.len());
    for sub in subs {
        let (fd, sub) = sub.into_parts()?;
        enable_rx_timestamps(&fd)?;
        feeds.push(Feed {
            fd,
            sub,
            tracker: SeqTracker::new(),
        });
    }
    let clock = RealtimeClock::new(&arrivals);
    std::thread::Builder::new()
        .name("sse-reader".into())
        .spawn(move || read_all(feeds, &arrivals, &stop, clock))
        .map_err(Error::Io)
}

fn read_all(
    mut feeds: Vec<Feed>,
    arrivals: &Arrivals<Latest>,
    stop: &AtomicBool,
    clock: RealtimeClock,
) -> Result<ReaderOutcome> {
    // SAFETY: plain syscall; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: `ep` is a new descriptor nothing else owns.
    let ep = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
    for (i, f) in feeds.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: both descriptors are open; `ev` outlives the call.
        let rc = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                f.fd.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut buf = vec![0u8; READ_BUF];
    let mut outcome = ReaderOutcome::default();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` has room for EVENTS entries.
        let n = unsafe {
            libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, POLL_MS)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Io(e));
        }
        for ev in &events[..n as usize] {
            let idx = ev.u64 as usize;
            let f = &mut feeds[idx];
            let Some((len, stamp_ns)) = recv_stamped(&f.fd, &mut buf)? else {
                continue;
            };
            if len == 0 {
                return Err(Error::Other(format!(
                    "the broker ended subscriber {idx}'s stream"
                )));
            }
            let now = arrivals.now_ns();
            let written = stamp_ns.map(|s| clock.to_epoch_ns(s));
            f.sub.absorb(&buf[..len])?;
            while let Some(body) = f.sub.next_data() {
                match parse_stamp_text(&body) {
                    Some(s) if s.producer == 0 => {
                        arrivals.latency.read[idx]
                            .store(now.saturating_sub(s.sent_ns), Ordering::Relaxed);
                        let w = written.map_or(0, |w| w.saturating_sub(s.sent_ns));
                        arrivals.latency.written[idx].store(w, Ordering::Relaxed);
                        if f.tracker.record(s.seq) == Seen::Late {
                            outcome.reordered += 1;
                        }
                    }
                    _ => outcome.unexpected += 1,
                }
                // SeqCst inside: the round loop reads the latencies after it.
                arrivals.arrive();
            }
        }
    }
    outcome.open = feeds.iter().filter(|f| still_open(&f.fd)).count();
    outcome.trackers = feeds.into_iter().map(|f| f.tracker).collect();
    Ok(outcome)
}

fn enable_rx_timestamps(fd: &OwnedFd) -> Result<()> {
    let flags: libc::c_uint = libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE;
    // SAFETY: a valid socket and a c_uint option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            &flags as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// One non-blocking `recvmsg`: bytes read (0 at EOF) and the kernel's
/// software receive stamp (CLOCK_REALTIME ns) if it sent one; None when
/// there was nothing to read after all.
fn recv_stamped(fd: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, Option<u64>)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for one SCM_TIMESTAMPING (three timespecs) and then some.
    let mut control = [0u64; 16];
    // SAFETY: zeroed msghdr is a valid "no name, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(Error::Io(e)),
        };
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel just wrote, with the
    // libc macros that bound them by msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPING {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                if ts.tv_sec != 0 || ts.tv_nsec != 0 {
                    stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some((n as usize, stamp)))
}

/// Whether the broker still holds the feed open: EOF means it closed it.
fn still_open(fd: &OwnedFd) -> bool {
    let mut b = [0u8; 4096];
    loop {
        // SAFETY: a valid socket and buffer.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                b.as_mut_ptr() as *mut libc::c_void,
                b.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return false,
            n if n > 0 => continue,
            _ => return std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

/// Maps CLOCK_REALTIME stamps onto the run's monotonic epoch (what the
/// message stamps count from): the offset between the two clocks, taken as
/// the tightest of a few back-to-back readings.
struct RealtimeClock {
    /// realtime ns - epoch ns.
    offset: i128,
}

impl RealtimeClock {
    fn new<L>(arrivals: &Arrivals<L>) -> RealtimeClock {
        let mut best: Option<(u128, i128)> = None;
        for _ in 0..16 {
            let a = Instant::now();
            let epoch_ns = arrivals.now_ns() as i128;
            let real = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i128)
                .unwrap_or(0);
            let gap = a.elapsed().as_nanos();
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, real - epoch_ns));
            }
        }
        RealtimeClock {
            offset: best.map_or(0, |(_, o)| o),
        }
    }

    fn to_epoch_ns(&self, realtime_ns: u64) -> u64 {
        (realtime_ns as i128 - self.offset).max(0) as u64
    }
}
