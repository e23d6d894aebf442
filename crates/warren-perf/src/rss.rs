//! Reading a broker's resident memory (and descriptor count) from /proc, for
//! the footprint scenarios.
//!
//! RSS is what the operating system charges the process, whatever its allocator
//! or runtime does internally, so it compares a Rust broker and an Erlang VM on
//! equal terms. It only works when the broker runs on this machine (`--broker-pid`).
//!
//! Also the pieces of the reports' RSS lines, which every footprint scenario
//! (connections, queues, web-idle, backlog) prints alike.

use std::time::Duration;

use crate::client::{Error, Result};
use crate::fmt;

/// Pause before reading RSS, so the numbers reflect a settled broker.
const SETTLE: Duration = Duration::from_secs(2);

/// A report's RSS line without `--broker-pid`.
pub(crate) const NOT_MEASURED: &str = "  broker RSS not measured (pass --broker-pid)\n";

/// VmRSS of `pid` in KiB, or None if it cannot be read (no such process, not
/// Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

/// RSS after letting the broker settle: freshly freed or allocated memory (an
/// Erlang VM's garbage collection, a Rust allocator returning pages) takes a
/// moment to show. Samples for `settle` and returns the last reading.
pub async fn settled_rss_kib(pid: u32, settle: Duration) -> Option<u64> {
    tokio::time::sleep(settle).await;
    rss_kib(pid)
}

/// Open file descriptors of `pid` (entries of /proc/PID/fd), or None if they
/// cannot be listed: a leaked socket shows here before it shows in RSS.
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Fail early if `--broker-pid` names no process we can read.
pub(crate) fn check_pid(pid: Option<u32>) -> Result<()> {
    if let Some(p) = pid {
        if rss_kib(p).is_none() {
            return Err(Error::Other(format!(
                "cannot read /proc/{p}/status: is --broker-pid right?"
            )));
        }
    }
    Ok(())
}

/// The settled RSS of the broker, if there is a `--broker-pid`.
pub(crate) async fn rss(pid: Option<u32>) -> Option<u64> {
    match pid {
        Some(p) => settled_rss_kib(p, SETTLE).await,
        None => None,
    }
}

/// RSS growth per thing held: (with - before) / n.
pub(crate) fn per(before: Option<u64>, with: Option<u64>, n: usize) -> Option<f64> {
    Some((with? as f64 - before? as f64) / n.max(1) as f64)
}

/// A reading for a report line; "?" if it failed.
pub(crate) fn kib_or_unknown(kib: Option<u64>) -> String {
    kib.map_or("?".to_string(), |v| fmt::kib(v as f64))
}

/// The RSS line of the footprint reports: before, with the `what`s, after,
/// and the cost of one.
pub(crate) fn rss_lines(
    before: Option<u64>,
    with: Option<u64>,
    after: Option<u64>,
    per: Option<f64>,
    what: &str,
) -> String {
    match (before, with, per) {
        (Some(b), Some(w), Some(p)) => format!(
            "  broker RSS {} before, {} with them, {} after; {} per {what}\n",
            fmt::kib(b as f64),
            fmt::kib(w as f64),
            kib_or_unknown(after),
            fmt::kib(p)
        ),
        _ => NOT_MEASURED.to_string(),
    }
}

/// Samples RSS every 50 ms in the background and remembers the peak, for phases
/// where the interesting number is the maximum (a backlog building up).
pub struct PeakSampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakSampler {
    pub fn start(pid: u32) -> PeakSampler {
        use std::sync::atomic::Ordering;
        let peak =
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
            }
        });
        PeakSampler { peak, task }
    }

    /// Stop sampling and return the peak seen (KiB).
    pub fn finish(self) -> u64 {
        self.task.abort();
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let s = "Name:\tbeam.smp\nVmPeak:\t 100 kB\nVmRSS:\t   123456 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(s), Some(123456));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_own_rss() {
        if cfg!(target_os = "linux") {
            assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
            assert!(fd_count(std::process::id()).is_some_and(|n| n >= 3));
        }
    }
}
