//! The exposition formats: Prometheus text 0.0.4 (RabbitMQ's) and
//! OpenMetrics 1.0. A plain `String` writer: a scrape of 10,000 queues is
//! ~100,000 lines, written without a per-sample allocation.

use std::fmt::Write;

/// A metric's type, as `# TYPE` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// RabbitMQ's alarms and `*_info` families (OpenMetrics: `unknown`).
    Untyped,
}

/// A metric family: name (counters end in `_total`), type and help text.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

impl Family {
    pub const fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family { name, kind, help }
    }
}

/// Which exposition format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what RabbitMQ serves (and the default).
    Text004,
    /// `application/openmetrics-text; version=1.0.0`, when `Accept` asks.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics if the `Accept` header lists it (Prometheus sends it first
    /// when it prefers it), else text 0.0.4.
    pub fn from_accept(accept: &str) -> Format {
        if accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text004
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text004 => "text/plain; version=0.0.4",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Writes families and their samples.
pub struct Writer {
    out: String,
    format: Format,
    /// The family being written (its samples follow its header).
    current: &'static str,
}

impl Writer {
    pub fn new(format: Format, capacity: usize) -> Writer {
        Writer {
            out: String::with_capacity(capacity),
            format,
            current: "",
        }
    }

    /// `# TYPE` and `# HELP` lines (RabbitMQ writes TYPE first). OpenMetrics
    /// names a counter family without its `_total` suffix.
    pub fn family(&mut self, f: &Family) {
        self.current = f.name;
        let (name, kind) = match (self.format, f.kind) {
            (Format::Text004, Kind::Counter) => (f.name, "counter"),
            (Format::Text004, Kind::Gauge) => (f.name, "gauge"),
            (Format::Text004, Kind::Untyped) => (f.name, "untyped"),
            (Format::OpenMetrics, Kind::Counter) => {
                (f.name.strip_suffix("_total").unwrap_or(f.name), "counter")
            }
            (Format::OpenMetrics, Kind::Gauge) => (f.name, "gauge"),
            (Format::OpenMetrics, Kind::Untyped) => (f.name, "unknown"),
        };
        let _ = writeln!(self.out, "# TYPE {} {}", name, kind);
        let _ = writeln!(self.out, "# HELP {} {}", name, f.help);
    }

    /// One sample of the current family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(self.current);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value);
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, f: &Family, value: u64) {
        self.family(f);
        self.sample(&[], value);
    }

    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_into(out: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
