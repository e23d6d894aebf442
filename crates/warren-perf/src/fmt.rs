//! Number formatting for the human-readable output.

/// 1234567 -> "1,234,567".
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    // Digits before the first comma: 1 to 3.
    let head = (s.len() - 1) % 3 + 1;
    out.push_str(&s[..head]);
    for group in s.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|&b| b as char));
    }
    out
}

/// A rate, rounded to a whole number of messages per second.
pub fn rate(r: f64) -> String {
    int(r.max(0.0).round() as u64)
}

/// Nanoseconds in the most readable unit: "850 ns", "45.2 µs", "1.31 ms", "2.05 s".
pub fn ns(v: u64) -> String {
    let f = v as f64;
    if v < 1_000 {
        format!("{v} ns")
    } else if v < 1_000_000 {
        format!("{:.1} µs", f / 1e3)
    } else if v < 1_000_000_000 {
        format!("{:.2} ms", f / 1e6)
    } else {
        format!("{:.2} s", f / 1e9)
    }
}

/// KiB as "812 KiB" / "12.3 MiB".
pub fn kib(v: f64) -> String {
    if v.abs() < 1024.0 {
        format!("{v:.1} KiB")
    } else {
        format!("{:.1} MiB", v / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::int(0), "0");
        assert_eq!(super::int(999), "999");
        assert_eq!(super::int(1_234_567), "1,234,567");
        assert_eq!(super::ns(850), "850 ns");
        assert_eq!(super::ns(45_200), "45.2 µs");
        assert_eq!(super::ns(1_310_000), "1.31 ms");
    }
}
