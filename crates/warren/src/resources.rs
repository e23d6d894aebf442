//! Resource alarms: memory high watermark and disk free limit.
//!
//! Like RabbitMQ, the broker checks its memory use and the data directory's free
//! disk space periodically; while either is over its limit, publishing connections
//! get `connection.blocked` and are not read (consumers keep draining), which keeps
//! a fast publisher from running the broker out of memory or disk.

use crate::config::Resources;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};
use warren_core::Broker;

pub struct AlarmConfig {
    pub memory_limit: u64,
    pub disk_free_limit: u64,
}

impl AlarmConfig {
    pub fn from_file(r: Option<&Resources>) -> AlarmConfig {
        let total = total_memory().unwrap_or(8 << 30);
        let fraction = r.and_then(|r| r.memory_high_watermark).unwrap_or(0.4);
        let memory_limit = r
            .and_then(|r| r.memory_high_watermark_bytes)
            .unwrap_or((total as f64 * fraction) as u64);
        let disk_free_limit = r
            .and_then(|r| r.disk_free_limit_bytes)
            .unwrap_or(50_000_000);
        AlarmConfig {
            memory_limit,
            disk_free_limit,
        }
    }
}

/// Memory the broker holds: bytes allocated through jemalloc (what RabbitMQ's
/// alarm calls "used" memory). Unlike RSS it drops as soon as messages are freed,
/// so publishers are unblocked promptly once consumers drain.
pub fn used_bytes() -> Option<u64> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().ok()? as u64;
    Some(allocated)
}

/// Anonymous resident memory of this process (heap, stacks; not the binary's
/// mapped pages), from /proc: what RabbitMQ's default `rss` strategy watches.
/// It can be far above [`used_bytes`]: a flood of STOMP frames with huge
/// headers left 175 MiB resident with 52 MiB allocated (fragmentation; purging
/// jemalloc's freed pages did not lower it). The alarm looks at both.
pub fn rss_anon_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident memory of this process, from /proc.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Raise the soft open-file limit to the hard one (every connection is a
/// descriptor; distributions start services with a soft limit of 1024), as
/// RabbitMQ's start scripts do. Returns the (soft, hard) limits in force.
pub fn raise_nofile_limit() -> Option<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a valid struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return None;
        }
        if rl.rlim_cur < rl.rlim_max {
            let wanted = libc::rlimit {
                // The kernel refuses an unlimited soft limit (fs.nr_open caps it).
                rlim_cur: if rl.rlim_max == libc::RLIM_INFINITY {
                    1 << 20
                } else {
                    rl.rlim_max
                },
                rlim_max: rl.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &wanted);
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
                return None;
            }
        }
    }
    Some((rl.rlim_cur, rl.rlim_max))
}

fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn disk_free(path: &std::path::Path) -> Option<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-param.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// What `/metrics` reports about the node: its name, the alarm limits and
/// the data directory's free space.
pub fn prometheus_probe(
    cfg: &AlarmConfig,
    data_dir: &std::path::Path,
) -> warren_http::prometheus::NodeProbe {
    let dir = data_dir.to_path_buf();
    let mut probe = warren_http::prometheus::NodeProbe::unknown(&warren_http::node_name());
    probe.memory_limit = cfg.memory_limit;
    probe.disk_free_limit = cfg.disk_free_limit;
    probe.disk_free = Arc::new(move || disk_free(&dir));
    probe
}

/// Start the alarm monitor on a thread of its own: every 50 ms it raises or
/// clears the broker's alarm. The interval bounds the overshoot (a loopback
/// flood adds ~100 MiB in 200 ms), and the check is cheap (a jemalloc epoch
/// and a statvfs). Not a tokio task: a flood that keeps every runtime worker
/// busy (parsing huge STOMP headers in a debug build held them for 11 s)
/// must not delay the very alarm that stops it.
pub fn spawn_monitor(broker: Arc<Broker>, cfg: AlarmConfig, data_dir: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("resource-alarms".into())
        .spawn(move || monitor(&broker, &cfg, &data_dir));
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the resource alarm monitor");
    }
}

fn monitor(broker: &Broker, cfg: &AlarmConfig, data_dir: &std::path::Path) {
    info!(
        memory_limit = cfg.memory_limit,
        disk_free_limit = cfg.disk_free_limit,
        "resource alarms armed"
    );
    let mut raised: Option<String> = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let allocated = used_bytes().or_else(rss_bytes).unwrap_or(0);
        let anon = rss_anon_bytes().unwrap_or(0);
        let used = allocated.max(anon);
        let free = disk_free(data_dir).unwrap_or(u64::MAX);
        let reason = if used > cfg.memory_limit {
            Some("low on memory".to_string())
        } else if free < cfg.disk_free_limit {
            Some("low on disk".to_string())
        } else {
            None
        };
        if reason != raised {
            match &reason {
                Some(r) => warn!(used, free, "resource alarm: {}; blocking publishers", r),
                None => info!(used, free, "resource alarm cleared; unblocking publishers"),
            }
            broker.set_alarm(reason.clone());
            raised = reason;
        }
    }
}
