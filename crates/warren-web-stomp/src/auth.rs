//! HTTP Basic credentials, checked against the broker's users (the same
//! users, password hashes and loopback rule as AMQP and STOMP).

use axum::http::{header, HeaderMap};

/// The `WWW-Authenticate` of a 401: browsers prompt, then resend with Basic
/// credentials (and keep sending them to this origin).
pub const CHALLENGE: &str = "Basic realm=\"Warren\"";

/// The user name and password of an `Authorization: Basic ...` header, if the
/// request has a well-formed one (parsed by the core, shared with the HTTP API).
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    warren_core::auth::basic_credentials(headers.get(header::AUTHORIZATION)?.as_bytes())
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
