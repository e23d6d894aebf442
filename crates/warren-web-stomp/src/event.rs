//! Deliveries as Server-Sent Events (`text/event-stream`).
//!
//! One message is one event:
//!
//! ```text
//! id: 7                  a number per feed connection, from 1; on a stream
//!                        feed the message's stream offset
//! event: user.42         the routing key (left out when empty: a "message" event)
//! data: first line       one `data:` line per body line
//! data: second line
//!                        a blank line ends the event
//! ```
//!
//! The body's line breaks (CRLF, CR or LF, all line ends to an EventSource) become
//! `data:` lines, which the browser joins with LF again. A heart-beat is a comment
//! line (`:`), which keeps proxies from closing an idle feed and lets the broker
//! notice a browser that went away.

use bytes::{BufMut, BytesMut};
use warren_core::outlet::WireEncoder;
use warren_stomp::encode::format_decimal;
use warren_stomp::writer::Outbound;

/// Whether events are named after the routing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventNames {
    /// `event: <routing key>` (the default): a page listens with
    /// `addEventListener(key, ...)`, or `onmessage` for an empty key.
    RoutingKey,
    /// No `event:` line: every message is a "message" event (`onmessage`).
    Message,
}

/// The encoder of one feed.
pub struct EventWire {
    next_id: u64,
    names: EventNames,
    /// Ids are the messages' stream offsets (`Last-Event-ID` resumes there).
    stream: bool,
    /// Each event (and comment) is an HTTP/1.1 chunk of its own: the feed
    /// writes to its socket directly, under a head that said
    /// `transfer-encoding: chunked`.
    chunked: bool,
    /// An event before its chunk header (the size comes first).
    scratch: BytesMut,
}

impl EventWire {
    pub fn new(names: EventNames, stream: bool) -> EventWire {
        EventWire {
            next_id: 1,
            names,
            stream,
            chunked: false,
            scratch: BytesMut::new(),
        }
    }

    /// Frame every event as an HTTP/1.1 chunk (the stream's end, the last,
    /// empty chunk, is [`LAST_CHUNK`]).
    pub fn chunked(mut self, yes: bool) -> EventWire {
        self.chunked = yes;
        self
    }

    pub fn is_chunked(&self) -> bool {
        self.chunked
    }

    /// `f`'s bytes, as a chunk when chunked.
    fn framed(&mut self, out: &mut BytesMut, f: impl FnOnce(&mut Self, &mut BytesMut)) {
        if !self.chunked {
            return f(self, out);
        }
        let mut body = std::mem::take(&mut self.scratch);
        f(self, &mut body);
        chunk(out, &body);
        body.clear();
        self.scratch = body;
    }

    fn event(&mut self, out: &mut BytesMut, name: &[u8], body: &[u8], offset: Option<u64>) {
        out.reserve(32 + name.len() + body.len() + body.len() / 16);
        out.put_slice(b"id: ");
        let id = offset.unwrap_or(self.next_id);
        out.put_slice(format_decimal(id, &mut [0u8; 20]));
        out.put_u8(b'\n');
        self.next_id = id + 1;
        if self.names == EventNames::RoutingKey && !name.is_empty() {
            out.put_slice(b"event: ");
            // A routing key is a short string: it can hold any byte, but a line
            // break would end the field early.
            for &b in name {
                out.put_u8(if b == b'\n' || b == b'\r' { b' ' } else { b });
            }
            out.put_u8(b'\n');
        }
        data_lines(out, body);
        out.put_u8(b'\n');
    }
}

/// What ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// One HTTP/1.1 chunk: the size in hex, CRLF, the bytes, CRLF.
fn chunk(out: &mut BytesMut, bytes: &[u8]) {
    let mut hex = [0u8; 16];
    let mut n = bytes.len();
    let mut i = hex.len();
    loop {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.reserve(hex.len() - i + bytes.len() + 4);
    out.put_slice(&hex[i..]);
    out.put_slice(b"\r\n");
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

/// `data: <line>\n` for every line of `body` (one empty `data:` line for an
/// empty body, so the event still fires).
fn data_lines(out: &mut BytesMut, body: &[u8]) {
    let mut rest = body;
    loop {
        let end = line_end(rest);
        out.put_slice(b"data: ");
        out.put_slice(&rest[..end]);
        out.put_u8(b'\n');
        if end == rest.len() {
            return;
        }
        // CRLF is one line end.
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
}

/// The `x-stream-offset` header a stream put on the message.
fn stream_offset(m: &warren_core::Message) -> Option<u64> {
    let headers = m.decode_properties().headers?;
    let v = headers
        .get(warren_core::queue::stream::OFFSET_HEADER)?
        .as_i64()?;
    u64::try_from(v).ok()
}

fn line_end(b: &[u8]) -> usize {
    b.iter()
        .position(|&c| c == b'\n' || c == b'\r')
        .unwrap_or(b.len())
}

impl WireEncoder<Outbound> for EventWire {
    fn encode(&mut self, out: &mut BytesMut, item: &Outbound) {
        match item {
            Outbound::Message(d) => {
                let m = &d.message;
                let offset = if self.stream { stream_offset(m) } else { None };
                self.framed(out, |w, out| {
                    w.event(out, m.routing_key.as_bytes(), &m.body, offset)
                });
            }
            // A feed has no frames to show: its SUBSCRIBE was answered over
            // HTTP, and an ERROR (the broker closing it) ends the stream.
            Outbound::Frame(_) => {}
        }
    }

    fn heartbeat(&mut self, out: &mut BytesMut) {
        self.framed(out, |_, out| out.put_slice(b":\n\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(names: EventNames, key: &[u8], body: &[u8]) -> String {
        let mut w = EventWire::new(names, false);
        let mut out = BytesMut::new();
        w.event(&mut out, key, body, None);
        w.event(&mut out, b"", b"x", None);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn chunked_events_are_chunks() {
        let mut w = EventWire::new(EventNames::RoutingKey, false).chunked(true);
        let mut out = BytesMut::new();
        w.heartbeat(&mut out);
        w.framed(&mut out, |w, out| w.event(out, b"k", &[b'x'; 300], None));
        out.extend_from_slice(LAST_CHUNK);
        let event = format!("id: 1\nevent: k\ndata: {}\n\n", "x".repeat(300));
        let want = format!("3\r\n:\n\n\r\n{:x}\r\n{}\r\n0\r\n\r\n", event.len(), event);
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), want);
    }

    #[test]
    fn one_event_per_message() {
        assert_eq!(
            event(EventNames::RoutingKey, b"user.42", b"hello"),
            "id: 1\nevent: user.42\ndata: hello\n\nid: 2\ndata: x\n\n"
        );
        assert_eq!(
            event(EventNames::Message, b"user.42", b"a\nb\r\nc\rd\n"),
            "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \n\nid: 2\ndata: x\n\n"
        );
        assert_eq!(
            event(EventNames::RoutingKey, b"k\nx", b""),
            "id: 1\nevent: k x\ndata: \n\nid: 2\ndata: x\n\n"
        );
    }
}
