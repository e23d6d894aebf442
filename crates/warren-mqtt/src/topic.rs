//! MQTT topics and AMQP routing keys, as RabbitMQ's MQTT plugin maps them:
//! `/` ↔ `.`, `+` ↔ `*`, `#` stays `#`. So `sensors/+/temp` is bound to
//! `amq.topic` as `sensors.*.temp`, and an AMQP publish with routing key
//! `sensors.k1.temp` reaches an MQTT subscriber as topic `sensors/k1/temp`.
//! The mapping is lossy as RabbitMQ's is (a `.` inside an MQTT topic level
//! becomes a level separator): Warren must interoperate with clients that
//! rely on RabbitMQ's names, so it keeps them.
//!
//! Also here: topic filter validation, filter matching (retained messages,
//! subscription identifiers) and shared-subscription names.

use bytes::Bytes;

/// MQTT topic name or filter → AMQP routing key / binding key.
pub fn to_amqp(topic: &[u8]) -> Bytes {
    topic
        .iter()
        .map(|&c| match c {
            b'/' => b'.',
            b'+' => b'*',
            c => c,
        })
        .collect::<Vec<u8>>()
        .into()
}

/// AMQP routing key → MQTT topic name.
pub fn from_amqp(key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend(key.iter().map(|&c| match c {
        b'.' => b'/',
        b'*' => b'+',
        c => c,
    }));
}

/// Why a topic filter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterError {
    Empty,
    /// `#` not alone in the last level, `+` not alone in its level.
    MisplacedWildcard,
    /// `$share/` without a group or filter, or a group with wildcards.
    BadShare,
}

/// Check a topic filter (section 4.7.1).
pub fn validate_filter(filter: &[u8]) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    let mut levels = filter.split(|&c| c == b'/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains(&b'#') && (level != b"#" || !last) {
            return Err(FilterError::MisplacedWildcard);
        }
        if level.contains(&b'+') && level != b"+" {
            return Err(FilterError::MisplacedWildcard);
        }
    }
    Ok(())
}

/// A shared subscription's group and filter.
pub type Shared<'a> = (&'a [u8], &'a [u8]);

/// `$share/GROUP/FILTER` → (group, filter).
pub fn parse_shared(filter: &[u8]) -> Result<Option<Shared<'_>>, FilterError> {
    let Some(rest) = filter.strip_prefix(b"$share/") else {
        return Ok(None);
    };
    let Some(slash) = rest.iter().position(|&c| c == b'/') else {
        return Err(FilterError::BadShare);
    };
    let (group, f) = (&rest[..slash], &rest[slash + 1..]);
    if group.is_empty() || group.iter().any(|&c| c == b'+' || c == b'#') || f.is_empty() {
        return Err(FilterError::BadShare);
    }
    validate_filter(f)?;
    Ok(Some((group, f)))
}

/// Whether topic name `topic` matches filter `filter` (section 4.7). Topics
/// starting with `$` are not matched by a leading wildcard.
pub fn matches(filter: &[u8], topic: &[u8]) -> bool {
    if topic.first() == Some(&b'$') && matches!(filter.first(), Some(b'+') | Some(b'#')) {
        return false;
    }
    let mut f = filter.split(|&c| c == b'/');
    let mut t = topic.split(|&c| c == b'/');
    loop {
        match (f.next(), t.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_as_rabbitmq() {
        assert_eq!(&to_amqp(b"a/+/c/#")[..], b"a.*.c.#");
        assert_eq!(&to_amqp(b"/a//b")[..], b".a..b");
        let mut out = Vec::new();
        from_amqp(b"a.b.*", &mut out);
        assert_eq!(out, b"a/b/+");
    }

    #[test]
    fn filters() {
        for ok in [
            &b"#"[..],
            b"+",
            b"a/#",
            b"+/+",
            b"a/+/b",
            b"/",
            b"a//b",
            b"$SYS/#",
        ] {
            assert_eq!(
                validate_filter(ok),
                Ok(()),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [&b"a#"[..], b"#/a", b"a/b#", b"a+", b"+a/b", b"a/#/b"] {
            assert_eq!(validate_filter(bad), Err(FilterError::MisplacedWildcard));
        }
        assert_eq!(validate_filter(b""), Err(FilterError::Empty));
    }

    #[test]
    fn shared() {
        assert_eq!(
            parse_shared(b"$share/g/a/+"),
            Ok(Some((&b"g"[..], &b"a/+"[..])))
        );
        assert_eq!(parse_shared(b"a/b"), Ok(None));
        assert_eq!(parse_shared(b"$share/g"), Err(FilterError::BadShare));
        assert_eq!(parse_shared(b"$share//a"), Err(FilterError::BadShare));
        assert_eq!(parse_shared(b"$share/g+/a"), Err(FilterError::BadShare));
    }

    #[test]
    fn matching() {
        assert!(matches(b"a/+/c", b"a/b/c"));
        assert!(matches(b"a/#", b"a"));
        assert!(matches(b"a/#", b"a/b/c"));
        assert!(matches(b"#", b"a/b"));
        assert!(!matches(b"#", b"$SYS/x"));
        assert!(!matches(b"+/x", b"$SYS/x"));
        assert!(matches(b"$SYS/#", b"$SYS/x"));
        assert!(!matches(b"a/+", b"a/b/c"));
        assert!(matches(b"a/+", b"a/"));
        assert!(!matches(b"a/b", b"a/b/c"));
    }
}
