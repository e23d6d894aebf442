//! The read side of a connection: bytes in, packets out ([`MqttCodec`]), with
//! no buffer held while the connection is idle.
//!
//! Why not tokio-util's `FramedRead`: it keeps its read buffer (1 KiB here)
//! for the connection's lifetime, and most MQTT connections are idle devices
//! that send a PINGREQ now and then. Here, when every buffered packet has been
//! decoded, the buffer is let go; the next read goes into a stack array first
//! and only what arrived is copied into a buffer of that size (or a bigger
//! one when the stack array filled up, so a busy connection reads in large
//! chunks, one syscall per chunk, as before). Packets are still `Bytes`
//! slices of the buffer: a PUBLISH payload reaches the core without a copy.

use bytes::BytesMut;
use futures_util::Stream;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use crate::codec::MqttCodec;
use crate::error::DecodeError;
use crate::packet::Packet;

/// The first read of a burst (on the stack, so not held while idle).
const STACK_READ: usize = 2048;
/// The buffer of a busy connection (grows further for bigger packets).
const BUSY_BUFFER: usize = 16 * 1024;

pub struct PacketReader<R> {
    inner: R,
    codec: MqttCodec,
    buf: BytesMut,
    done: bool,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub fn new(inner: R, codec: MqttCodec) -> PacketReader<R> {
        PacketReader {
            inner,
            codec,
            buf: BytesMut::new(),
            done: false,
        }
    }

    pub fn decoder_mut(&mut self) -> &mut MqttCodec {
        &mut self.codec
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Packet, DecodeError>>> {
        self.done = true;
        Poll::Ready(Some(Err(DecodeError::Malformed(why))))
    }
}

impl<R: AsyncRead + Unpin> Stream for PacketReader<R> {
    type Item = Result<Packet, DecodeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if !this.buf.is_empty() {
                match this.codec.decode(&mut this.buf) {
                    Ok(Some(p)) => return Poll::Ready(Some(Ok(p))),
                    Ok(None) => {}
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            if this.buf.is_empty() {
                // Nothing pending: drop the buffer (decoded packets keep
                // their slices of it alive) and read onto the stack.
                this.buf = BytesMut::new();
                let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
                let mut rb = ReadBuf::uninit(&mut stack);
                match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb)) {
                    Err(_) => return this.fail("I/O error"),
                    Ok(()) if rb.filled().is_empty() => {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    Ok(()) => {
                        let n = rb.filled().len();
                        let cap = if n == STACK_READ { BUSY_BUFFER } else { n };
                        this.buf.reserve(cap);
                        this.buf.extend_from_slice(rb.filled());
                    }
                }
            } else {
                // Part of a packet: read the rest after it (the codec has
                // reserved room for the whole packet once it knew its size).
                if this.buf.len() == this.buf.capacity() {
                    this.buf.reserve(BUSY_BUFFER);
                }
                match ready!(poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf)) {
                    Err(_) => return this.fail("I/O error"),
                    Ok(0) => return this.fail("connection closed inside a packet"),
                    Ok(_) => {}
                }
            }
        }
    }
}
