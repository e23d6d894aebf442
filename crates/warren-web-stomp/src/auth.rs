//! HTTP Basic credentials, checked against the broker's users (the same
//! users, password hashes and loopback rule as AMQP and STOMP).

use axum::http::{header, HeaderMap};
use base64::Engine;

/// The `WWW-Authenticate` of a 401: browsers prompt, then resend with Basic
/// credentials (and keep sending them to this origin).
pub const CHALLENGE: &str = "Basic realm=\"Warren\"";

/// The user name and password of an `Authorization: Basic ...` header, if the
/// request has a well-formed one.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let encoded = strip_prefix_ignore_case(value, b"basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(trim(encoded))
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &value[prefix.len()..])
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn parses_basic_credentials() {
        // "guest:gu:est" — the password may hold colons.
        let h = with("Basic Z3Vlc3Q6Z3U6ZXN0");
        assert_eq!(
            basic_credentials(&h),
            Some(("guest".into(), b"gu:est".to_vec()))
        );
        assert_eq!(
            basic_credentials(&with("basic  Z3Vlc3Q6Z3Vlc3Q= ")),
            Some(("guest".into(), b"guest".to_vec()))
        );
        assert_eq!(basic_credentials(&with("Bearer abc")), None);
        assert_eq!(basic_credentials(&with("Basic !!!")), None);
        assert_eq!(basic_credentials(&with("Basic Z3Vlc3Q=")), None); // no colon
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
    }
}
