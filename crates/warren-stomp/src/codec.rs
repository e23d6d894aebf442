//! [`StompCodec`]: the decoder and encoder of one connection, configured together.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::decode::{Limits, StompDecoder};
use crate::encode::StompEncoder;
use crate::error::DecodeError;
use crate::frame::{Frame, Item};
use crate::version::{Dialect, Version};

/// Settings for a connection's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub dialect: Dialect,
    pub limits: Limits,
    /// LF after each outgoing frame's NUL (RabbitMQ's `stomp.trailing_lf`, default on).
    pub trailing_lf: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            dialect: Dialect::RabbitMq,
            limits: Limits::DEFAULT,
            trailing_lf: true,
        }
    }
}

impl Config {
    /// The client side of a connection (the load generator, tests): by-the-book
    /// escaping and `content-length` on every incoming frame (MESSAGE bodies may
    /// hold NULs), no LF after outgoing frames. Call `set_version` on both halves
    /// once CONNECTED has named the version.
    pub fn client() -> Config {
        Config {
            dialect: Dialect::Spec,
            limits: Limits::DEFAULT,
            trailing_lf: false,
        }
    }
}

/// A STOMP `Decoder` + `Encoder`. For a split connection (a reader task and a writer
/// task), use [`StompCodec::into_parts`] and set the version on both halves.
#[derive(Debug)]
pub struct StompCodec {
    decoder: StompDecoder,
    encoder: StompEncoder,
}

impl StompCodec {
    pub fn new(config: Config) -> StompCodec {
        StompCodec {
            decoder: StompDecoder::new(config.dialect, config.limits),
            encoder: StompEncoder::new(config.dialect, config.trailing_lf),
        }
    }

    /// Sets the version negotiated by CONNECT for both directions (see
    /// [`StompDecoder::set_version`]).
    pub fn set_version(&mut self, version: Version) {
        self.decoder.set_version(version);
        self.encoder.set_version(version);
    }

    pub fn version(&self) -> Version {
        self.decoder.version()
    }

    pub fn decoder(&self) -> &StompDecoder {
        &self.decoder
    }

    pub fn decoder_mut(&mut self) -> &mut StompDecoder {
        &mut self.decoder
    }

    pub fn encoder(&self) -> &StompEncoder {
        &self.encoder
    }

    pub fn into_parts(self) -> (StompDecoder, StompEncoder) {
        (self.decoder, self.encoder)
    }
}

impl Default for StompCodec {
    fn default() -> StompCodec {
        StompCodec::new(Config::default())
    }
}

impl Decoder for StompCodec {
    type Item = Item;
    type Error = DecodeError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        self.decoder.decode(buf)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        self.decoder.decode_eof(buf)
    }
}

impl Encoder<&Frame> for StompCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> std::io::Result<()> {
        self.encoder.encode(frame, out)
    }
}

impl Encoder<Frame> for StompCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Frame, out: &mut BytesMut) -> std::io::Result<()> {
        self.encoder.encode(frame, out)
    }
}

impl Encoder<Item> for StompCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Item, out: &mut BytesMut) -> std::io::Result<()> {
        self.encoder.encode(item, out)
    }
}
