//! The streaming decoder.
//!
//! Bytes arrive in arbitrary pieces, so the decoder is a resumable state machine:
//! between frames it skips heart-beat EOLs; in the header section it examines each
//! octet exactly once, remembering where it stopped; in a body it either waits for
//! `content-length` octets or searches for the NUL from where the last search ended.
//! Nothing is rescanned when a frame trickles in, so a slow sender costs linear time.
//!
//! The grammar, including RabbitMQ's departures from the specification, follows
//! `rabbit_stomp_frame:parse/2` in RabbitMQ 3.10:
//!
//! * between frames, LF, CR LF and NUL are skipped;
//! * CR LF ends a line wherever LF does, and a CR before anything else is an error
//!   (also inside header values: a raw CR cannot be sent, only `\r`);
//! * the command is the whole first line, compared byte for byte;
//! * a header line needs a colon; the name may be empty, the value may contain
//!   further colons; NULs in the header section are ordinary octets;
//! * escapes are processed in names and values (which escapes: [`Dialect`]);
//! * only SEND's `content-length` is used (RabbitMQ dialect); the first occurrence
//!   of a header wins.

use bytes::{Buf, Bytes, BytesMut};

use crate::command::Command;
use crate::error::{DecodeError, Part};
use crate::escape::unescape_in_place;
use crate::frame::{Frame, Item};
use crate::headers::{Entry, Headers, IntegerError};
use crate::version::{Dialect, Escaping, Version};

/// Size limits on incoming frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Octets from the first octet of the command to the blank line ending the
    /// headers, inclusive.
    pub max_header_section: usize,
    /// Headers per frame, duplicates included.
    pub max_headers: usize,
    /// Octets of body.
    pub max_body: usize,
}

impl Limits {
    /// RabbitMQ 3.10 enforces no limit at all; these defaults only stop a client from
    /// making Warren buffer without bound, far above anything a legitimate client
    /// sends. `max_body` is RabbitMQ's ceiling on `max_message_size` (512 MiB);
    /// after login the adapter lowers it to the broker's `max_message_size`
    /// ([`StompDecoder::set_max_body`]) and answers a longer body with
    /// RabbitMQ's ERROR `precondition_failed`.
    pub const DEFAULT: Limits = Limits {
        max_header_section: 1024 * 1024,
        max_headers: 1000,
        max_body: 512 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// How far ahead the decoder reserves buffer space for a `content-length` body.
/// Reserving the whole declared length would let a client make us allocate
/// `max_body` with one header line.
const MAX_RESERVE: usize = 4 * 1024 * 1024;

/// Which line of the header section the scanner is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Command,
    /// At the start of a header line (or of the blank line ending the headers).
    Start,
    Name,
    Value,
}

/// Progress through a frame's command line and headers. The frame's first octet is
/// `buf[0]`; all positions are offsets from it.
#[derive(Debug)]
struct Head {
    pos: usize,
    line: Line,
    /// A CR was seen at this position; the next octet must be LF.
    cr_at: Option<usize>,
    /// A backslash was seen in a name or value; the next octet is an escape code.
    escape_pending: bool,
    /// Whether any escape was seen (so the section must be unescaped).
    has_escapes: bool,
    escaping: Escaping,
    command_end: usize,
    name_start: usize,
    name_end: usize,
    value_start: usize,
    entries: Vec<Entry>,
}

impl Head {
    /// Most frames have a handful of headers: one allocation covers them.
    fn for_frame() -> Head {
        Head {
            entries: Vec::with_capacity(8),
            ..Head::default()
        }
    }
}

impl Default for Head {
    fn default() -> Head {
        Head {
            pos: 0,
            line: Line::Command,
            cr_at: None,
            escape_pending: false,
            has_escapes: false,
            escaping: Escaping::None,
            command_end: 0,
            name_start: 0,
            name_end: 0,
            value_start: 0,
            entries: Vec::new(),
        }
    }
}

#[derive(Debug)]
enum BodyLen {
    Known(usize),
    /// Up to the first NUL; `scanned` octets are known not to hold one.
    UntilNul {
        scanned: usize,
    },
}

/// A frame whose header section is complete; the body starts at `buf[0]`.
#[derive(Debug)]
struct Body {
    command: Command,
    headers: Headers,
    len: BodyLen,
}

#[derive(Debug)]
enum State {
    BetweenFrames,
    Head(Head),
    Body(Body),
}

/// Decodes a byte stream into [`Item`]s. Use it through [`StompCodec`](crate::StompCodec)
/// or on its own with `FramedRead`.
#[derive(Debug)]
pub struct StompDecoder {
    dialect: Dialect,
    version: Version,
    limits: Limits,
    state: State,
    /// Octets of input seen, for heart-beat monitoring of frames that arrive slowly.
    received: u64,
    /// `buf.len()` when `decode` last returned: anything beyond it is new.
    seen: usize,
}

impl StompDecoder {
    pub fn new(dialect: Dialect, limits: Limits) -> StompDecoder {
        StompDecoder {
            dialect,
            version: Version::V1_0,
            limits,
            state: State::BetweenFrames,
            received: 0,
            seen: 0,
        }
    }

    /// Sets the version negotiated by CONNECT. It applies from the next frame whose
    /// command line has not been read yet; since the decoder reads no further than
    /// the frame it returns, calling this right after handling CONNECT covers every
    /// later frame. (In the RabbitMQ dialect the version changes nothing: RabbitMQ
    /// parses every version alike.)
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Largest body accepted from now on (the broker's `max_message_size`
    /// once the client logged in).
    pub fn set_max_body(&mut self, n: usize) {
        self.limits.max_body = n;
    }

    /// Total octets the decoder has been handed, frame or not. RabbitMQ's heart-beat
    /// monitor watches the socket's received-octet count, so a large frame arriving
    /// slowly keeps a connection alive although no [`Item`] comes out for a while; an
    /// adapter can compare this counter between heart-beat ticks to do the same.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Whether the decoder is between frames (no partial frame buffered).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::BetweenFrames)
    }

    fn decode_item(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let mut skipped = false;
        if let State::BetweenFrames = self.state {
            skipped = skip_noise(buf, true)? > 0;
            if buf.is_empty() || buf[..] == [b'\r'] {
                return Ok(skipped.then_some(Item::Heartbeat));
            }
            self.state = State::Head(Head::for_frame());
        }
        if let State::Head(head) = &mut self.state {
            let Some(len) = scan_head(head, buf, self.dialect, self.version, &self.limits)? else {
                return Ok(skipped.then_some(Item::Heartbeat));
            };
            let head = std::mem::take(head);
            self.state = State::Body(self.finish_head(head, buf.split_to(len))?);
        }
        let State::Body(body) = &mut self.state else {
            return Ok(skipped.then_some(Item::Heartbeat));
        };
        let Some(len) = body_len(body, buf, self.limits.max_body)? else {
            return Ok(skipped.then_some(Item::Heartbeat));
        };
        let frame = Frame::new(
            std::mem::replace(&mut body.command, Command::Send),
            std::mem::take(&mut body.headers),
            buf.split_to(len).freeze(),
        );
        buf.advance(1); // the NUL
        self.state = State::BetweenFrames;
        // EOLs right behind a frame are usually the sender's frame terminator
        // (RabbitMQ itself writes NUL LF): eat what is already here, so that they do
        // not come out as a separate heart-beat.
        let _ = skip_noise(buf, false);
        Ok(Some(Item::Frame(frame)))
    }

    /// Turns a complete header section into the command and headers, and works out
    /// how the body ends.
    fn finish_head(&self, head: Head, mut raw: BytesMut) -> Result<Body, DecodeError> {
        let Head {
            has_escapes,
            escaping,
            command_end,
            mut entries,
            ..
        } = head;
        if has_escapes {
            // Names and values are in increasing order, so one forward pass can
            // compact them behind the read position.
            let mut w = entries.first().map_or(command_end, |e| e.name.0);
            for e in &mut entries {
                let n0 = w;
                w = unescape_in_place(&mut raw, e.name, w, escaping);
                e.name = (n0, w);
                let v0 = w;
                w = unescape_in_place(&mut raw, e.value, w, escaping);
                e.value = (v0, w);
            }
            raw.truncate(w);
        }
        let raw = raw.freeze();
        let command = Command::from_bytes(&raw.slice(..command_end));
        let headers = Headers::from_parts(raw, entries);
        let len = if self.dialect.reads_content_length(&command) {
            match headers.content_length() {
                None => BodyLen::UntilNul { scanned: 0 },
                Some(Ok(n)) if n <= self.limits.max_body as u64 => BodyLen::Known(n as usize),
                Some(Ok(n)) => {
                    return Err(DecodeError::BodyTooLarge {
                        limit: self.limits.max_body,
                        declared: Some(n),
                    })
                }
                Some(Err(IntegerError::Overflow)) => {
                    return Err(DecodeError::BodyTooLarge {
                        limit: self.limits.max_body,
                        declared: None,
                    })
                }
                Some(Err(IntegerError::Invalid)) => return Err(DecodeError::InvalidContentLength),
            }
        } else {
            BodyLen::UntilNul { scanned: 0 }
        };
        Ok(Body {
            command,
            headers,
            len,
        })
    }
}

/// Skips LF, CR LF and NUL at the front of `buf`; returns how many octets went.
/// A CR followed by anything else is an error if `strict`, else left in place for
/// the next call to report. A CR at the very end is left until its successor comes.
fn skip_noise(buf: &mut BytesMut, strict: bool) -> Result<usize, DecodeError> {
    let mut n = 0;
    loop {
        match buf[n..] {
            [0 | b'\n', ..] => n += 1,
            [b'\r', b'\n', ..] => n += 2,
            [b'\r', found, ..] if strict => {
                buf.advance(n);
                return Err(DecodeError::UnexpectedCr {
                    part: Part::BetweenFrames,
                    found,
                });
            }
            _ => break,
        }
    }
    buf.advance(n);
    Ok(n)
}

/// Advances through the header section. Returns its length once the blank line
/// ending it has arrived.
fn scan_head(
    h: &mut Head,
    buf: &BytesMut,
    dialect: Dialect,
    version: Version,
    limits: &Limits,
) -> Result<Option<usize>, DecodeError> {
    let end = buf.len().min(limits.max_header_section);
    while h.pos < end {
        let i = h.pos;
        let b = buf[i];
        h.pos += 1;
        if h.escape_pending {
            // RabbitMQ checks the escape before the CR rule: `\` CR is a bad escape.
            h.escape_pending = false;
            if h.escaping.unescape(b).is_none() {
                return Err(DecodeError::BadEscape { code: b });
            }
            continue;
        }
        let content_end = match (h.cr_at.take(), b) {
            (Some(cr), b'\n') => cr,
            (Some(_), found) => {
                let part = if h.line == Line::Command {
                    Part::Command
                } else {
                    Part::Header
                };
                return Err(DecodeError::UnexpectedCr { part, found });
            }
            (None, b'\r') => {
                h.cr_at = Some(i);
                continue;
            }
            (None, b'\n') => i,
            (None, _) => {
                scan_octet(h, i, b);
                continue;
            }
        };
        // End of a line.
        match h.line {
            Line::Command => {
                h.command_end = content_end;
                let command =
                    Command::known(&buf[..content_end]).unwrap_or(Command::Other(Bytes::new()));
                h.escaping = dialect.decode_escaping(version, &command);
                h.line = Line::Start;
            }
            Line::Start => return Ok(Some(h.pos)),
            Line::Name => return Err(DecodeError::HeaderWithoutValue),
            Line::Value => {
                if h.entries.len() >= limits.max_headers {
                    return Err(DecodeError::TooManyHeaders {
                        limit: limits.max_headers,
                    });
                }
                h.entries.push(Entry {
                    name: (h.name_start, h.name_end),
                    value: (h.value_start, content_end),
                });
                h.line = Line::Start;
            }
        }
    }
    if buf.len() > limits.max_header_section {
        return Err(DecodeError::HeaderSectionTooLarge {
            limit: limits.max_header_section,
        });
    }
    Ok(None)
}

/// An octet that is neither CR nor LF, at position `i`.
#[inline]
fn scan_octet(h: &mut Head, i: usize, b: u8) {
    match h.line {
        Line::Command => {}
        Line::Start => {
            h.line = Line::Name;
            h.name_start = i;
            scan_name_octet(h, i, b);
        }
        Line::Name => scan_name_octet(h, i, b),
        Line::Value => {
            if b == b'\\' && h.escaping.active() {
                h.escape_pending = true;
                h.has_escapes = true;
            }
        }
    }
}

#[inline]
fn scan_name_octet(h: &mut Head, i: usize, b: u8) {
    if b == b':' {
        h.name_end = i;
        h.value_start = i + 1;
        h.line = Line::Value;
    } else if b == b'\\' && h.escaping.active() {
        h.escape_pending = true;
        h.has_escapes = true;
    }
}

/// The body's length once all of it and its NUL are in `buf`.
fn body_len(body: &mut Body, buf: &mut BytesMut, max: usize) -> Result<Option<usize>, DecodeError> {
    match &mut body.len {
        BodyLen::Known(n) => {
            let n = *n;
            if buf.len() <= n {
                buf.reserve((n + 1 - buf.len()).min(MAX_RESERVE));
                return Ok(None);
            }
            match buf[n] {
                0 => Ok(Some(n)),
                found => Err(DecodeError::MissingNul { found }),
            }
        }
        BodyLen::UntilNul { scanned } => {
            // A body of `max` octets is fine; its NUL may be at index `max`.
            let window = buf.len().min(max.saturating_add(1));
            let from = (*scanned).min(window);
            if let Some(p) = memchr::memchr(0, &buf[from..window]) {
                return Ok(Some(from + p));
            }
            if buf.len() > max {
                return Err(DecodeError::BodyTooLarge {
                    limit: max,
                    declared: None,
                });
            }
            *scanned = window;
            Ok(None)
        }
    }
}

impl tokio_util::codec::Decoder for StompDecoder {
    type Item = Item;
    type Error = DecodeError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        self.received += buf.len().saturating_sub(self.seen) as u64;
        let r = self.decode_item(buf);
        self.seen = buf.len();
        r
    }

    /// At end of stream a partial frame is dropped silently: the peer has gone, and
    /// RabbitMQ does the same (the connection just ends).
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        match self.decode(buf)? {
            Some(item) => Ok(Some(item)),
            None => {
                buf.clear();
                self.seen = 0;
                Ok(None)
            }
        }
    }
}
