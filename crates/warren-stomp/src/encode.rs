//! Serializing frames the way RabbitMQ's `rabbit_stomp_frame:serialize/2` does.
//!
//! ```text
//! COMMAND LF
//! (name ":" value LF)*          in the order given, escaped, minus any
//!                               `content-length` header given
//! "content-length:" N LF        only if the body is not empty
//! LF body NUL [LF]              LF after the NUL unless trailing_lf is off
//! ```
//!
//! Frames are appended to a caller-owned buffer, so the writer task can batch many
//! frames into one socket write. [`FrameWriter`] writes headers straight from the
//! caller's slices (no `Frame`, no header buffer in between) and copies the body
//! once: that is the MESSAGE delivery path.

use bytes::{BufMut, BytesMut};

use crate::command::Command;
use crate::escape::{escaped_len, put_escaped};
use crate::frame::{Frame, Item};
use crate::headers::names;
use crate::version::{Dialect, Escaping, Version};

/// Writes frames for one connection.
#[derive(Debug, Clone, Copy)]
pub struct StompEncoder {
    dialect: Dialect,
    version: Version,
    trailing_lf: bool,
}

impl StompEncoder {
    /// `trailing_lf`: write LF after each frame's NUL, as RabbitMQ does unless its
    /// `stomp.trailing_lf` setting is off (rabbitmq/rabbitmq-stomp#39).
    pub fn new(dialect: Dialect, trailing_lf: bool) -> StompEncoder {
        StompEncoder {
            dialect,
            version: Version::V1_0,
            trailing_lf,
        }
    }

    /// Sets the version negotiated by CONNECT (only matters in the `Spec` dialect).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The escaping this encoder applies to a frame with `command`.
    pub fn escaping(&self, command: &Command) -> Escaping {
        self.dialect.encode_escaping(self.version, command)
    }

    /// Starts a frame in `out`, reserving `size_hint` octets (the caller's estimate of
    /// the whole frame, body included; an underestimate only costs a reallocation).
    pub fn writer<'a>(
        &self,
        out: &'a mut BytesMut,
        command: &Command,
        size_hint: usize,
    ) -> FrameWriter<'a> {
        out.reserve(size_hint);
        let cmd = command.as_bytes();
        out.put_slice(cmd);
        out.put_u8(b'\n');
        FrameWriter {
            out,
            escaping: self.escaping(command),
            trailing_lf: self.trailing_lf,
        }
    }

    /// Appends `frame`.
    pub fn encode_frame(&self, frame: &Frame, out: &mut BytesMut) {
        let headers: usize = frame
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum();
        // Command + LF, headers, content-length line, LF, body, NUL, LF.
        let hint = frame.command.as_bytes().len() + 1 + headers + 36 + frame.body.len() + 2;
        let mut w = self.writer(out, &frame.command, hint);
        for (n, v) in frame.headers.iter() {
            w.header(n, v);
        }
        w.finish(&frame.body);
    }

    /// Appends a heart-beat: one LF (what RabbitMQ's heart-beat sender writes).
    pub fn encode_heartbeat(out: &mut BytesMut) {
        out.put_u8(b'\n');
    }

    /// The exact size `frame` encodes to.
    pub fn encoded_len(&self, frame: &Frame) -> usize {
        let esc = self.escaping(&frame.command);
        let mut len = frame.command.as_bytes().len() + 1;
        for (n, v) in frame.headers.iter() {
            if n == names::CONTENT_LENGTH.as_bytes() {
                continue;
            }
            len += escaped_len(n, esc) + escaped_len(v, esc) + 2;
        }
        if !frame.body.is_empty() {
            len += names::CONTENT_LENGTH.len() + 2 + decimal_len(frame.body.len());
        }
        len + 1 + frame.body.len() + 1 + usize::from(self.trailing_lf)
    }
}

/// A frame being written: add headers, then [`finish`](FrameWriter::finish) it with
/// the body. Dropping it unfinished leaves a partial frame in the buffer.
#[must_use = "a frame must be finished with its body"]
pub struct FrameWriter<'a> {
    out: &'a mut BytesMut,
    escaping: Escaping,
    trailing_lf: bool,
}

impl FrameWriter<'_> {
    /// Appends a header. A `content-length` header is dropped, because
    /// [`finish`](FrameWriter::finish) writes the real one.
    ///
    /// RabbitMQ's serializer does `lists:keydelete("content-length", ...)`, which
    /// removes only the *first*; a second one (possible only if an AMQP message
    /// carries the key twice in its headers table) would go out ahead of the real
    /// length and make the client misread the body. We drop them all: the same
    /// output in every case a client can survive.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        if name == names::CONTENT_LENGTH.as_bytes() {
            return self;
        }
        put_escaped(self.out, name, self.escaping);
        self.out.put_u8(b':');
        put_escaped(self.out, value, self.escaping);
        self.out.put_u8(b'\n');
        self
    }

    /// Appends a header whose value is a number.
    pub fn header_u64(&mut self, name: &[u8], value: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let s = format_decimal(value, &mut digits);
        self.header(name, s)
    }

    /// Ends the headers and writes the body: `content-length` (if the body is not
    /// empty, as RabbitMQ), a blank line, the body, NUL and the optional LF.
    pub fn finish(self, body: &[u8]) {
        if !body.is_empty() {
            let mut digits = [0u8; 20];
            let len = format_decimal(body.len() as u64, &mut digits);
            self.out
                .reserve(names::CONTENT_LENGTH.len() + len.len() + 4 + body.len());
            self.out.put_slice(names::CONTENT_LENGTH.as_bytes());
            self.out.put_u8(b':');
            self.out.put_slice(len);
            self.out.put_u8(b'\n');
        }
        self.out.put_u8(b'\n');
        self.out.put_slice(body);
        self.out.put_u8(0);
        if self.trailing_lf {
            self.out.put_u8(b'\n');
        }
    }
}

/// `n` in decimal, written at the end of `buf` (no allocation).
pub fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn decimal_len(n: usize) -> usize {
    let mut digits = [0u8; 20];
    format_decimal(n as u64, &mut digits).len()
}

impl tokio_util::codec::Encoder<&Frame> for StompEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> std::io::Result<()> {
        self.encode_frame(frame, out);
        Ok(())
    }
}

impl tokio_util::codec::Encoder<Frame> for StompEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Frame, out: &mut BytesMut) -> std::io::Result<()> {
        self.encode_frame(&frame, out);
        Ok(())
    }
}

impl tokio_util::codec::Encoder<Item> for StompEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, item: Item, out: &mut BytesMut) -> std::io::Result<()> {
        match item {
            Item::Frame(frame) => self.encode_frame(&frame, out),
            Item::Heartbeat => StompEncoder::encode_heartbeat(out),
        }
        Ok(())
    }
}
