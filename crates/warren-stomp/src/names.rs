//! Names the adapter makes up: session ids and subscription queue names.
//!
//! Why reproduce RabbitMQ's exact queue names? A durable topic subscription
//! lives in a queue named after the destination and the subscription id. A
//! client that moves from RabbitMQ to Warren (or a definitions import, or an
//! AMQP tool that inspects the queue) must find the same name, so the name is
//! computed the way RabbitMQ computes it:
//! `"stomp-subscription-" ++ base64url(md5(term_to_binary({Name, Id})))`.

use md5::{Digest, Md5};

/// Prefix of the queues behind `/topic` and `/exchange` subscriptions.
pub const SUBSCRIPTION_PREFIX: &str = "stomp-subscription-";

/// The queue of a `/topic/NAME` (or `/exchange/X/NAME`) subscription with id `id`,
/// as RabbitMQ names it (`rabbit_stomp_util:subscription_queue_name/3`).
pub fn subscription_queue(name: &[u8], id: &[u8]) -> String {
    // Erlang's external term format of the tuple {Name, Id}, both strings
    // (lists of octets, as RabbitMQ's frame parser produces them).
    let mut term = Vec::with_capacity(16 + name.len() + id.len());
    term.extend_from_slice(&[131, 104, 2]);
    erlang_string(name, &mut term);
    erlang_string(id, &mut term);
    let digest = Md5::digest(&term);
    let mut out = String::with_capacity(SUBSCRIPTION_PREFIX.len() + 22);
    out.push_str(SUBSCRIPTION_PREFIX);
    base64url(&digest, &mut out);
    out
}

/// A fresh session id, `session-` plus 22 url-safe characters (RabbitMQ's shape).
/// `random` supplies the entropy (the vhost's name generator).
pub fn session_id(random: &[u8]) -> String {
    let digest = Md5::digest(random);
    let mut out = String::with_capacity(30);
    out.push_str("session-");
    base64url(&digest, &mut out);
    out
}

/// `term_to_binary` of a list of octets: `NIL_EXT` when empty, `STRING_EXT` up to
/// 65535 octets, `LIST_EXT` of small integers beyond.
fn erlang_string(s: &[u8], out: &mut Vec<u8>) {
    if s.is_empty() {
        out.push(106);
    } else if s.len() <= 0xffff {
        out.push(107);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    } else {
        out.push(108);
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        for &b in s {
            out.extend_from_slice(&[97, b]);
        }
        out.push(106);
    }
}

/// Base64 with `-` and `_`, without padding (`rabbit_misc:base64url/1`).
fn base64url(data: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_without_padding() {
        let mut s = String::new();
        base64url(b"\xfb\xff", &mut s);
        assert_eq!(s, "-_8");
        s.clear();
        base64url(b"abc", &mut s);
        assert_eq!(s, "YWJj");
    }

    #[test]
    fn term_encoding() {
        let mut t = Vec::new();
        erlang_string(b"", &mut t);
        erlang_string(b"ab", &mut t);
        assert_eq!(t, [106, 107, 0, 2, b'a', b'b']);
    }

    #[test]
    fn subscription_name_is_rabbitmqs() {
        // What RabbitMQ 3.10.8 declared for SUBSCRIBE destination:/topic/foo.bar
        // id:sub-1 durable:true.
        assert_eq!(
            subscription_queue(b"foo.bar", b"sub-1"),
            "stomp-subscription-Wq6NeTRu2s01tfnwddRiXg"
        );
    }

    #[test]
    fn subscription_names_have_rabbitmq_shape() {
        let n = subscription_queue(b"foo", b"1");
        assert!(n.starts_with(SUBSCRIPTION_PREFIX));
        assert_eq!(n.len(), SUBSCRIPTION_PREFIX.len() + 22);
        assert_eq!(n, subscription_queue(b"foo", b"1"));
        assert_ne!(n, subscription_queue(b"foo", b"2"));
    }
}
