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
}

impl EventWire {
    pub fn new(names: EventNames, stream: bool) -> EventWire {
        EventWire {
            next_id: 1,
            names,
            stream,
        }
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
                self.event(out, m.routing_key.as_bytes(), &m.body, offset);
            }
            // A feed has no frames to show: its SUBSCRIBE was answered over
            // HTTP, and an ERROR (the broker closing it) ends the stream.
            Outbound::Frame(_) => {}
        }
    }

    fn heartbeat(&mut self, out: &mut BytesMut) {
        out.put_slice(b":\n\n");
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
