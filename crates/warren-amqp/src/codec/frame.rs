//! AMQP 0-9-1 framing: turning the byte stream into [`Frame`]s and back.
//!
//! Every frame is laid out as
//!
//! ```text
//! type: u8 | channel: u16 | size: u32 | payload: [u8; size] | frame-end: 0xCE
//! ```
//!
//! The size prefix lets the decoder know up front how much to wait for, so it can
//! reject an oversized frame from its 7-byte header alone (before buffering a byte of
//! it) and reserve buffer space for the whole frame in one go. The frame-end octet
//! carries no information; it is a cheap check that sender and receiver agree on
//! where frames start, so a mismatch is a fatal framing error.
//!
//! Decoded bodies and content-header properties are slices of the read buffer
//! (`BytesMut::split_to(..).freeze()`), not copies: a published body travels from the
//! socket to the queue and out to consumers without being copied. The flip side is
//! that a retained slice keeps its part of the read buffer's allocation alive; the
//! read buffer itself is not reused while that happens, `BytesMut` just allocates a
//! fresh one.

use super::error::MethodDecodeError;
use super::method::{reply_code, Method};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;
use tokio_util::codec::Decoder;

/// What a client sends before its first frame: "AMQP", 0, then version 0-9-1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// The smallest frame_max a peer may negotiate, and so the largest frame every peer
/// must accept before tuning. AMQP 0-9-1 says 4096 and so does RabbitMQ 3.x; note
/// that the RabbitMQ 4.x spec file we generate from says 8192 (raised so that large
/// OAuth tokens fit in connection.start-ok).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// Bytes of framing around every payload: type, channel and size before it, the
/// frame-end octet after it. A frame of `frame_max` bytes carries at most
/// `frame_max - FRAME_OVERHEAD` bytes of payload.
pub const FRAME_OVERHEAD: u32 = 8;

/// Type, channel and size: what the decoder needs to see before it can do anything.
const FRAME_HEADER_LEN: usize = 7;

/// A content header payload is class id, weight, body size (12 bytes) and at least
/// the 2-byte property flags word.
const CONTENT_HEADER_MIN_LEN: usize = 14;

/// With no frame size limit (frame_max 0) a peer could announce a 4 GiB frame; we
/// reserve at most this much up front and let the buffer grow as data really
/// arrives, so an announcement alone cannot make us allocate.
const MAX_UP_FRONT_RESERVE: usize = 1 << 20;

/// One AMQP frame. The `u16` is the channel number.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Method(u16, Method),
    Header(u16, ContentHeader),
    Body(u16, Bytes),
    Heartbeat(u16),
}

/// A content header frame's payload. The properties are kept raw: the broker
/// forwards them to consumers byte for byte and only decodes them
/// (`warren_core::BasicProperties::decode`) when it needs a value, so they are not
/// validated here either.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    /// Unused by AMQP 0-9-1; must be zero.
    pub weight: u16,
    pub body_size: u64,
    /// raw property bytes starting at the 16-bit property-flags word, kept untouched
    pub properties: Bytes,
}

/// A connection-level protocol error: the connection must be closed with `code` (AMQP
/// reply code: 501 FRAME_ERROR, 502 SYNTAX_ERROR, 505 UNEXPECTED_FRAME, 540
/// NOT_IMPLEMENTED, ...).
///
/// `text` is the detail without the code's name (e.g. "unknown frame type 5");
/// RabbitMQ's reply text is `"{name} - {text}"`, with the name from
/// [`reply_code::name`]. `class_id` and `method_id` name the offending method when
/// there is one (0 otherwise), for `connection.close`.
///
/// An I/O error reading the socket is also reported as a `FrameError` (that is what
/// `FramedRead` requires); it has `code` 0, see [`FrameError::is_io`]. There is no
/// peer left to send a close to in that case.
#[derive(Debug)]
pub struct FrameError {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl FrameError {
    /// A `code` error about no method in particular.
    pub fn new(code: u16, text: impl Into<String>) -> FrameError {
        FrameError::for_method(code, 0, 0, text)
    }

    /// A `code` error caused by method (`class_id`, `method_id`).
    pub fn for_method(
        code: u16,
        class_id: u16,
        method_id: u16,
        text: impl Into<String>,
    ) -> FrameError {
        FrameError {
            code,
            text: text.into(),
            class_id,
            method_id,
        }
    }

    fn framing(text: impl Into<String>) -> FrameError {
        FrameError::new(reply_code::FRAME_ERROR, text)
    }

    /// Whether this is a transport failure (socket error, or the peer closed the
    /// socket mid-frame) rather than a protocol error.
    pub fn is_io(&self) -> bool {
        self.code == 0
    }
}

impl From<MethodDecodeError> for FrameError {
    fn from(e: MethodDecodeError) -> FrameError {
        FrameError::for_method(e.reply_code(), e.class_id(), e.method_id(), e.to_string())
    }
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> FrameError {
        FrameError {
            code: 0,
            text: format!("I/O error: {e}"),
            class_id: 0,
            method_id: 0,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match reply_code::name(self.code) {
            Some(name) => write!(f, "{} {name} - {}", self.code, self.text),
            None => write!(f, "{}", self.text),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits the byte stream into frames; use it with `tokio_util::codec::FramedRead`.
///
/// Decodes method arguments too, so that a malformed method is rejected where the
/// bytes are, and the connection code only ever sees well-formed [`Method`]s. What it
/// does not check is whether a frame makes sense where it arrives (e.g. a heartbeat
/// on channel 1, a body frame without a publish): that is connection state.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: u32,
}

impl FrameDecoder {
    /// `max_frame_size` is the largest frame accepted, framing included; 0 means no
    /// limit. Before `connection.tune-ok` it should be [`FRAME_MIN_SIZE`].
    pub fn new(max_frame_size: u32) -> Self {
        FrameDecoder { max_frame_size }
    }

    /// Apply the negotiated frame_max (0 = unlimited) once tuning is done.
    pub fn set_max_frame_size(&mut self, max: u32) {
        self.max_frame_size = max;
    }

    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Whether a frame with a payload of `size` bytes is too large.
    ///
    /// RabbitMQ lets the payload itself be up to frame_max bytes, i.e. it tolerates
    /// frames up to 8 bytes larger than negotiated ("FRAME_SIZE_FUDGE" in
    /// rabbit_reader, for clients that forget to subtract the framing overhead). We
    /// accept exactly what RabbitMQ accepts so that no client that works there fails
    /// here; what we *send* always respects the limit strictly.
    fn too_large(&self, size: u32) -> bool {
        self.max_frame_size != 0 && size > self.max_frame_size
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(head) = src.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let kind = head[0];
        let channel = u16::from_be_bytes([head[1], head[2]]);
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);

        // Check everything the header alone tells us before buffering the payload:
        // a garbage or hostile header must not make us wait for (or allocate) up to
        // 4 GiB.
        if !matches!(
            kind,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Err(FrameError::framing(format!("unknown frame type {kind}")));
        }
        if self.too_large(size) {
            return Err(FrameError::framing(format!(
                "type {kind}, frame payload of {size} bytes exceeds frame_max {}",
                self.max_frame_size
            )));
        }
        // `size` is at most u32::MAX, so this only fails on 16-bit targets; still, no
        // unchecked arithmetic on input.
        let Some(total) = (size as usize).checked_add(FRAME_HEADER_LEN + 1) else {
            return Err(FrameError::framing("frame too large for this platform"));
        };

        if src.len() < total {
            // Make room for the rest of the frame now, so that the socket reads fill
            // it without the buffer growing (and copying) several times on the way.
            let missing = total - src.len();
            let reserve = if self.max_frame_size == 0 {
                missing.min(MAX_UP_FRONT_RESERVE)
            } else {
                missing
            };
            src.reserve(reserve);
            return Ok(None);
        }

        let end = src[total - 1];
        if end != FRAME_END {
            return Err(FrameError::framing(format!(
                "type {kind}, invalid frame end marker 0x{end:02x}"
            )));
        }

        src.advance(FRAME_HEADER_LEN);
        let mut payload = src.split_to(size as usize).freeze();
        src.advance(1);

        let frame = match kind {
            FRAME_METHOD => {
                if payload.len() < 4 {
                    return Err(FrameError::framing(format!(
                        "method frame payload of {} bytes is too short",
                        payload.len()
                    )));
                }
                let class_id = payload.get_u16();
                let method_id = payload.get_u16();
                Frame::Method(channel, Method::decode(class_id, method_id, &mut payload)?)
            }
            FRAME_HEADER => {
                if payload.len() < CONTENT_HEADER_MIN_LEN {
                    return Err(FrameError::framing(format!(
                        "content header frame payload of {} bytes is too short",
                        payload.len()
                    )));
                }
                let class_id = payload.get_u16();
                let weight = payload.get_u16();
                let body_size = payload.get_u64();
                Frame::Header(
                    channel,
                    ContentHeader {
                        class_id,
                        weight,
                        body_size,
                        properties: payload,
                    },
                )
            }
            FRAME_BODY => Frame::Body(channel, payload),
            FRAME_HEARTBEAT => {
                if !payload.is_empty() {
                    return Err(FrameError::framing(format!(
                        "heartbeat frame with a {}-byte payload",
                        payload.len()
                    )));
                }
                Frame::Heartbeat(channel)
            }
            // Filtered out above, before the payload was buffered.
            _ => return Err(FrameError::framing(format!("unknown frame type {kind}"))),
        };
        Ok(Some(frame))
    }
}

/// Append the 7-byte frame header with a placeholder size, returning where the size
/// goes; [`finish_frame`] fills it in. Writing in place avoids encoding a method
/// into a temporary buffer just to learn its length.
fn start_frame(out: &mut BytesMut, kind: u8, channel: u16) -> usize {
    out.put_u8(kind);
    out.put_u16(channel);
    let size_at = out.len();
    out.put_u32(0);
    size_at
}

fn finish_frame(out: &mut BytesMut, size_at: usize) {
    let size = (out.len() - size_at - 4) as u32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.put_u8(FRAME_END);
}

/// Append a method frame. Method frames are not split: every method the broker
/// sends fits comfortably in the minimum frame size.
pub fn write_method(out: &mut BytesMut, channel: u16, method: &Method) {
    let size_at = start_frame(out, FRAME_METHOD, channel);
    method.encode(out);
    finish_frame(out, size_at);
}

/// Append a heartbeat frame (always on channel 0).
pub fn write_heartbeat(out: &mut BytesMut) {
    out.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Append a content header frame (class_id, weight 0, body size, raw properties
/// bytes) followed by body frames, each body frame's payload at most
/// `frame_max - 8` bytes (`frame_max` 0 = unlimited, one body frame); no body frame
/// when the body is empty.
///
/// `properties` starts at the property-flags word; an empty slice is taken to mean
/// "no properties" and written as a zero flags word, since an empty property list is
/// not valid on the wire. The header frame itself is not split, so the properties
/// must fit in `frame_max - 20` bytes; properties that arrived from a peer within
/// the same frame_max always do.
pub fn write_content(
    out: &mut BytesMut,
    channel: u16,
    class_id: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let properties: &[u8] = if properties.is_empty() {
        &[0, 0]
    } else {
        properties
    };
    let chunk = if frame_max == 0 {
        body.len().max(1)
    } else {
        // `max(1)`: a frame_max below the overhead is a caller bug, but must not
        // turn into a zero chunk size (which `chunks` rejects with a panic).
        (frame_max.saturating_sub(FRAME_OVERHEAD) as usize).max(1)
    };
    let body_frames = body.len().div_ceil(chunk);
    out.reserve(
        FRAME_OVERHEAD as usize
            + 12
            + properties.len()
            + body.len()
            + body_frames * FRAME_OVERHEAD as usize,
    );

    let size_at = start_frame(out, FRAME_HEADER, channel);
    out.put_u16(class_id);
    out.put_u16(0);
    out.put_u64(body.len() as u64);
    out.put_slice(properties);
    finish_frame(out, size_at);

    for piece in body.chunks(chunk) {
        out.put_u8(FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(piece.len() as u32);
        out.put_slice(piece);
        out.put_u8(FRAME_END);
    }
}

/// Append any frame, as the decoder would return it (content headers with their
/// weight as given). Mostly for tests and tools; the broker uses the specific
/// writers above.
pub fn write_frame(out: &mut BytesMut, frame: &Frame) {
    match frame {
        Frame::Method(channel, method) => write_method(out, *channel, method),
        Frame::Header(channel, header) => {
            let size_at = start_frame(out, FRAME_HEADER, *channel);
            out.put_u16(header.class_id);
            out.put_u16(header.weight);
            out.put_u64(header.body_size);
            out.put_slice(&header.properties);
            finish_frame(out, size_at);
        }
        Frame::Body(channel, body) => {
            let size_at = start_frame(out, FRAME_BODY, *channel);
            out.put_slice(body);
            finish_frame(out, size_at);
        }
        Frame::Heartbeat(channel) => {
            let size_at = start_frame(out, FRAME_HEARTBEAT, *channel);
            finish_frame(out, size_at);
        }
    }
}
