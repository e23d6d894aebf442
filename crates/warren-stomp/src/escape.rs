//! Header escaping (outgoing) and in-place unescaping (incoming).

use bytes::{BufMut, BytesMut};

use crate::version::Escaping;

/// The escape code for an octet that must be escaped in a header, if it must.
#[inline]
fn code_for(b: u8) -> Option<u8> {
    match b {
        b'\n' => Some(b'n'),
        b':' => Some(b'c'),
        b'\\' => Some(b'\\'),
        b'\r' => Some(b'r'),
        _ => None,
    }
}

/// How many octets `s` takes once escaped.
pub(crate) fn escaped_len(s: &[u8], escaping: Escaping) -> usize {
    if escaping.active() {
        s.len() + s.iter().filter(|&&b| code_for(b).is_some()).count()
    } else {
        s.len()
    }
}

/// Appends `s` escaped.
///
/// Any active escaping escapes all four of LF, `:`, `\` and CR. For STOMP 1.1, which
/// has no `\r`, that is still the only way to send a CR without breaking the framing
/// (a bare CR before anything but LF is a syntax error), and it is what RabbitMQ
/// sends whatever the version.
pub(crate) fn put_escaped(out: &mut BytesMut, s: &[u8], escaping: Escaping) {
    if !escaping.active() {
        out.put_slice(s);
        return;
    }
    // Copy runs of plain octets in one go: escapes are rare.
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if let Some(code) = code_for(b) {
            out.put_slice(&s[run..i]);
            out.put_slice(&[b'\\', code]);
            run = i + 1;
        }
    }
    out.put_slice(&s[run..]);
}

/// Unescapes `buf[from.0..from.1]` into `buf[to..]`, returning where the result ends.
///
/// Every escape in the range has already been validated by the decoder, and
/// `to <= from.0`: unescaping only shrinks, so writing behind the read position is
/// safe. An invalid escape here (which the decoder never lets through) is copied
/// as is rather than panicking.
pub(crate) fn unescape_in_place(
    buf: &mut [u8],
    from: (usize, usize),
    mut to: usize,
    escaping: Escaping,
) -> usize {
    let (mut r, end) = from;
    debug_assert!(to <= r);
    while r < end {
        let b = buf[r];
        if b == b'\\' && r + 1 < end {
            if let Some(u) = escaping.unescape(buf[r + 1]) {
                buf[to] = u;
                to += 1;
                r += 2;
                continue;
            }
        }
        buf[to] = b;
        to += 1;
        r += 1;
    }
    to
}
