//! The few fields of an X.509 certificate Warren shows or logs in with: the
//! subject and issuer distinguished names, as RabbitMQ formats them, the
//! subject's common name and the validity period.
//!
//! Only certificates that rustls has already verified against the configured
//! CA reach this parser, but it still treats its input as untrusted: every
//! length is checked and anything unexpected gives None, never a panic. A
//! full X.509 library would be a large dependency for four strings.

use warren_core::net::PeerCert;

/// One DER element: (tag, contents, what follows it).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of an element that must have `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, body, rest) = tlv(input)?;
    (t == tag).then_some((body, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The parts of a DER certificate we read.
pub fn parse(der: &[u8]) -> Option<PeerCert> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // Optional explicit [0] version.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    let (_serial, rest) = expect(rest, 0x02)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, _) = expect(rest, SEQUENCE)?;
    let subject_rdns = rdns(subject)?;
    let common_names: Vec<&String> = subject_rdns
        .iter()
        .flatten()
        .filter(|(oid, _)| oid == "2.5.4.3")
        .map(|(_, v)| v)
        .collect();
    Some(PeerCert {
        subject: format_dn(&subject_rdns),
        issuer: format_dn(&rdns(issuer)?),
        validity: format_validity(validity).unwrap_or_default(),
        // RabbitMQ refuses a certificate login when the CN is missing or
        // ambiguous; so does Warren.
        common_name: match common_names.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        },
    })
}

/// A Name: its RDNs in certificate order, each a list of (OID, value).
type Rdns = Vec<Vec<(String, String)>>;

fn rdns(mut name: &[u8]) -> Option<Rdns> {
    let mut out = Vec::new();
    while !name.is_empty() {
        let (mut set, rest) = expect(name, SET)?;
        name = rest;
        let mut rdn = Vec::new();
        while !set.is_empty() {
            let (atv, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(atv, OID)?;
            let (tag, value, _) = tlv(value)?;
            rdn.push((oid_string(oid)?, string_value(tag, value)));
        }
        out.push(rdn);
    }
    Some(out)
}

/// Dotted decimal form of an OID's contents.
fn oid_string(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        if acc > (u64::MAX >> 8) {
            return None;
        }
        acc = (acc << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// A directory string's text. BMPString is UTF-16; the other string types
/// are ASCII subsets or UTF-8 (invalid bytes are replaced, not refused).
fn string_value(tag: u8, value: &[u8]) -> String {
    match tag {
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(value).into_owned(),
    }
}

/// The attribute names RabbitMQ (Erlang's public_key) prints; other
/// attributes print as their dotted OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// RFC 4514's string form, as RabbitMQ prints `peer_cert_subject`: the RDNs
/// last to first, separated by ",", multi-valued ones joined with "+", and
/// special characters escaped with a backslash.
fn format_dn(rdns: &Rdns) -> String {
    rdns.iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|(oid, v)| {
                    format!(
                        "{}={}",
                        short_name(oid).map(str::to_string).unwrap_or(oid.clone()),
                        escape(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// "2026-11-30T12:00:00Z - 2027-11-30T12:00:00Z" from UTCTime or
/// GeneralizedTime values.
fn format_validity(validity: &[u8]) -> Option<String> {
    let (t1, v1, rest) = tlv(validity)?;
    let (t2, v2, _) = tlv(rest)?;
    Some(format!("{} - {}", time(t1, v1)?, time(t2, v2)?))
}

fn time(tag: u8, v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        // UTCTime: YY < 50 is 20YY (RFC 5280).
        (0x17, 12) => {
            let yy: u32 = digits[..2].parse().ok()?;
            format!("{}{}", if yy < 50 { 20 } else { 19 }, digits)
        }
        (0x18, 14) => digits.to_string(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of an element.
    fn el(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 0x80 {
            v.push(body.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    fn atv(oid: &[u8], value: &str) -> Vec<u8> {
        el(
            SET,
            &el(
                SEQUENCE,
                &[el(OID, oid), el(0x0c, value.as_bytes())].concat(),
            ),
        )
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];

    fn cert(subject: Vec<u8>) -> Vec<u8> {
        let issuer = el(SEQUENCE, &atv(CN, "Test CA"));
        let validity = el(
            SEQUENCE,
            &[el(0x17, b"261130120000Z"), el(0x18, b"20271130120000Z")].concat(),
        );
        let tbs = el(
            SEQUENCE,
            &[
                el(0xa0, &el(0x02, &[2])),
                el(0x02, &[1, 2, 3]),
                el(SEQUENCE, &el(OID, &[0x2a, 0x86, 0x48])),
                issuer,
                validity,
                el(SEQUENCE, &subject),
            ]
            .concat(),
        );
        el(SEQUENCE, &tbs)
    }

    #[test]
    fn reads_subject_issuer_and_validity() {
        let c = parse(&cert([atv(O, "Example, Inc"), atv(CN, "alice")].concat())).unwrap();
        assert_eq!(c.subject, "CN=alice,O=Example\\, Inc");
        assert_eq!(c.issuer, "CN=Test CA");
        assert_eq!(c.common_name.as_deref(), Some("alice"));
        assert_eq!(c.validity, "2026-11-30T12:00:00Z - 2027-11-30T12:00:00Z");
    }

    #[test]
    fn no_or_two_common_names_log_in_nobody() {
        assert_eq!(parse(&cert(atv(O, "x"))).unwrap().common_name, None);
        let two = [atv(CN, "a"), atv(CN, "b")].concat();
        assert_eq!(parse(&cert(two)).unwrap().common_name, None);
    }

    #[test]
    fn truncated_input_is_none_not_a_panic() {
        let der = cert(atv(CN, "alice"));
        for n in 0..der.len() {
            let _ = parse(&der[..n]);
        }
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn oids() {
        assert_eq!(oid_string(&[0x55, 0x04, 0x03]).unwrap(), "2.5.4.3");
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).unwrap(),
            "1.2.840.113549.1.9.1"
        );
    }
}
