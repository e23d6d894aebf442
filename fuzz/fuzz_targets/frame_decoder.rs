//! Feeds arbitrary bytes to the AMQP frame decoder, the content-header property
//! decoder and the field-table decoder.
//!
//! Input layout: the first byte configures the run (bit 0: frame_max 4096 or
//! unlimited; bits 1..7: the size of the chunks the stream arrives in, 1..128 bytes,
//! to exercise partial-frame handling), the rest is the byte stream.
//!
//! Besides "never panics", it checks that whatever decodes re-encodes stably:
//! encode(decode(encode(x))) == encode(x). (Not decode(encode(x)) == x: tables may
//! hold NaN floats, and unused bits in a bit octet are dropped by design.)

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use warren_amqp::codec::{write_frame, Frame, FrameDecoder};
use warren_core::{BasicProperties, FieldTable};

fn reencode_frame(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    write_frame(&mut out, frame);
    out
}

fn check_frame(frame: Frame) {
    let first = reencode_frame(&frame);
    let mut buf = first.clone();
    let again = FrameDecoder::new(0)
        .decode(&mut buf)
        .expect("a re-encoded frame decodes")
        .expect("a re-encoded frame is complete");
    assert!(buf.is_empty());
    assert_eq!(reencode_frame(&again), first, "frame re-encoding is stable");
    if let Frame::Header(_, header) = &frame {
        check_properties(&header.properties);
    }
}

fn check_properties(raw: &Bytes) {
    if let Ok(props) = BasicProperties::decode(raw) {
        let first = props.encode();
        let again = BasicProperties::decode(&first).expect("re-encoded properties decode");
        assert_eq!(again.encode(), first, "property re-encoding is stable");
    }
}

fn check_table(raw: &[u8]) {
    let mut buf = Bytes::copy_from_slice(raw);
    if let Ok(table) = FieldTable::decode(&mut buf) {
        let mut first = Vec::new();
        table.encode(&mut first);
        let again =
            FieldTable::decode(&mut Bytes::from(first.clone())).expect("re-encoded table decodes");
        let mut second = Vec::new();
        again.encode(&mut second);
        assert_eq!(first, second, "table re-encoding is stable");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let max = if ctl & 1 == 0 { 4096 } else { 0 };
    let chunk = 1 + (ctl >> 1) as usize;

    let mut decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::new();
    'feed: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => check_frame(frame),
                Ok(None) => break,
                // A protocol error ends the connection; so does it end this run.
                Err(_) => break 'feed,
            }
        }
    }

    check_properties(&Bytes::copy_from_slice(stream));
    check_table(stream);
});
