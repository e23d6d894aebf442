//! What a run reports: one struct per scenario (serialised as-is for `--json`)
//! and the pieces they share.

use crate::histogram::Histogram;
use crate::seq::SeqTracker;
use serde::Serialize;

/// The result of any scenario. In JSON the scenario name is the `scenario` field.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "scenario", rename_all = "lowercase")]
pub enum Report {
    Throughput(crate::throughput::ThroughputReport),
    Fanout(crate::fanout::FanoutReport),
    Connections(crate::footprint::ConnectionsReport),
    Queues(crate::footprint::QueuesReport),
    Backlog(crate::backlog::BacklogReport),
    #[serde(rename = "web-idle")]
    WebIdle(crate::web_idle::WebIdleReport),
    #[serde(rename = "sse-fanout")]
    SseFanout(crate::web_fanout::WebFanoutReport),
    Stream(crate::stream::StreamReport),
    #[serde(rename = "mqtt-connections")]
    MqttConnections(crate::mqtt_conns::MqttConnectionsReport),
    Churn(crate::churn::ChurnReport),
}

impl Report {
    /// The human-readable summary.
    pub fn human(&self) -> String {
        match self {
            Report::Throughput(r) => r.human(),
            Report::Fanout(r) => r.human(),
            Report::Connections(r) => r.human(),
            Report::Queues(r) => r.human(),
            Report::Backlog(r) => r.human(),
            Report::WebIdle(r) => r.human(),
            Report::SseFanout(r) => r.human(),
            Report::Stream(r) => r.human(),
            Report::MqttConnections(r) => r.human(),
            Report::Churn(r) => r.human(),
        }
    }

    /// False if any message was lost, duplicated, reordered or unexpected.
    pub fn integrity_ok(&self) -> bool {
        match self {
            Report::Throughput(r) => r.integrity.ok(),
            Report::Fanout(r) => r.integrity.ok(),
            Report::Backlog(r) => r.integrity.ok(),
            Report::SseFanout(r) => r.integrity.ok(),
            Report::Stream(r) => r.integrity.ok(),
            // Subscribers the broker dropped count as a failed run.
            Report::WebIdle(r) => r.ok(),
            Report::MqttConnections(r) => r.ok(),
            // Failed cycles or what the broker kept afterwards.
            Report::Churn(r) => r.ok(),
            Report::Connections(_) | Report::Queues(_) => true,
        }
    }
}

/// Latency distribution in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p75_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.count(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.percentile(50.0)),
            p75_us: us(h.percentile(75.0)),
            p95_us: us(h.percentile(95.0)),
            p99_us: us(h.percentile(99.0)),
            p999_us: us(h.percentile(99.9)),
            max_us: us(h.max()),
        }
    }

    pub fn human(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        let f = |us: f64| crate::fmt::ns((us * 1000.0) as u64);
        format!(
            "min {}  p50 {}  p75 {}  p95 {}  p99 {}  p99.9 {}  max {}",
            f(self.min_us),
            f(self.p50_us),
            f(self.p75_us),
            f(self.p95_us),
            f(self.p99_us),
            f(self.p999_us),
            f(self.max_us)
        )
    }
}

/// The delivery check's verdict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Integrity {
    /// Whether deliveries were checked at all (not with zero consumers).
    pub checked: bool,
    /// Messages checked (distinct deliveries).
    pub messages: u64,
    /// Published (and expected at a queue) but never delivered there.
    pub lost: u64,
    /// Delivered more than once to the same queue.
    pub duplicated: u64,
    /// Delivered after a later message of the same producer, on the same consumer.
    pub reordered: u64,
    /// Deliveries flagged redelivered (not an error by itself).
    pub redelivered: u64,
    /// Deliveries without a valid stamp, from an unknown producer, at a queue
    /// that should not get them, or with a sequence number never sent.
    pub unexpected: u64,
    /// Publishes the broker nacked (not an error by itself: reported).
    pub nacked: u64,
    /// Publishes never confirmed within the wait (confirm mode only).
    pub unconfirmed: u64,
}

impl Integrity {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.unexpected == 0
    }

    /// Count in what a receiver's tracker saw of a sender that sent `sent`
    /// messages (sequence numbers 0..sent).
    pub fn add_tracker(&mut self, t: &SeqTracker, sent: u64) {
        self.messages += t.distinct();
        self.duplicated += t.duplicates();
        self.lost += t.missing(sent);
        self.unexpected += t.beyond(sent);
    }

    pub fn human(&self) -> String {
        if !self.checked {
            return "not checked (no consumers)".into();
        }
        let verdict = if self.ok() { "OK" } else { "FAILED" };
        let mut s = format!(
            "{verdict}: {} lost, {} duplicated, {} reordered, {} unexpected ({} messages checked",
            crate::fmt::int(self.lost),
            crate::fmt::int(self.duplicated),
            crate::fmt::int(self.reordered),
            crate::fmt::int(self.unexpected),
            crate::fmt::int(self.messages),
        );
        if self.redelivered > 0 {
            s += &format!(", {} redelivered", crate::fmt::int(self.redelivered));
        }
        if self.nacked > 0 {
            s += &format!(", {} nacked", crate::fmt::int(self.nacked));
        }
        if self.unconfirmed > 0 {
            s += &format!(", {} never confirmed", crate::fmt::int(self.unconfirmed));
        }
        s + ")"
    }
}

/// Per-round times of the fanout scenarios, in microseconds, and their
/// statistics. Flattened into the reports' JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    pub samples_us: Vec<f64>,
    pub median_us: f64,
    pub min_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Spread {
    pub fn of_ns(samples_ns: &[u64]) -> Spread {
        let us: Vec<f64> = samples_ns.iter().map(|&ns| ns as f64 / 1000.0).collect();
        Spread {
            median_us: median(&us),
            min_us: us.iter().copied().reduce(f64::min).unwrap_or(0.0),
            max_us: us.iter().copied().fold(0.0, f64::max),
            mean_us: if us.is_empty() {
                0.0
            } else {
                us.iter().sum::<f64>() / us.len() as f64
            },
            samples_us: us,
        }
    }

    pub fn human(&self) -> String {
        let f = |us: f64| crate::fmt::ns((us * 1000.0) as u64);
        format!(
            "median {}  min {}  mean {}  max {}",
            f(self.median_us),
            f(self.min_us),
            f(self.mean_us),
            f(self.max_us)
        )
    }
}

/// Median of a sample (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn spread_of_samples() {
        let s = Spread::of_ns(&[3000, 1000, 2000, 6000]);
        assert_eq!(s.samples_us, vec![3.0, 1.0, 2.0, 6.0]);
        assert_eq!(
            (s.median_us, s.min_us, s.mean_us, s.max_us),
            (2.5, 1.0, 3.0, 6.0)
        );
        assert_eq!(
            s.human(),
            "median 2.5 µs  min 1.0 µs  mean 3.0 µs  max 6.0 µs"
        );
        let e = Spread::of_ns(&[]);
        assert_eq!(
            (e.median_us, e.min_us, e.mean_us, e.max_us),
            (0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn integrity_verdict() {
        let mut i = Integrity {
            checked: true,
            messages: 10,
            redelivered: 2,
            nacked: 1,
            ..Default::default()
        };
        assert!(i.ok());
        i.reordered = 1;
        assert!(!i.ok());
        assert!(i.human().starts_with("FAILED"));
    }
}
