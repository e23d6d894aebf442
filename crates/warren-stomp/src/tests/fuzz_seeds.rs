//! Writes the fuzz seed corpus (an ignored test).

use super::*;

// ---------------------------------------------------------------------------
// Fuzz seeds

/// Regenerates `fuzz/seeds/stomp_decoder` (see fuzz/README.md):
/// `cargo test -p warren-stomp --lib -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/stomp_decoder");
    std::fs::create_dir_all(&dir).expect("create seed dir");
    // First byte (see the fuzz target): bit 0 dialect, bits 1-2 version, bit 3
    // default limits, bits 4-7 chunk size. 0xf8: RabbitMQ, 1.0, default limits,
    // 121-octet chunks; 0x1d: Spec, 1.2, default limits, 9-octet chunks.
    let write = |name: &str, ctl: u8, stream: &[u8]| {
        let mut data = vec![ctl];
        data.extend_from_slice(stream);
        std::fs::write(dir.join(name), data).expect("write seed");
    };
    write("sample-stream", 0xf8, &sample_stream());
    write("sample-stream-spec-1.2", 0x1d, &sample_stream());
    write("sample-stream-tiny-limits", 0x00, &sample_stream());
    let enc = StompEncoder::new(Dialect::RabbitMq, true);
    for name in [
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
        "CONNECTED",
        "MESSAGE",
        "RECEIPT",
        "ERROR",
    ] {
        let command = Command::known(name.as_bytes()).expect("known");
        let f = Frame::new(
            command,
            Headers::from_pairs([
                ("destination", "/queue/a:b"),
                ("receipt", "r\\1"),
                ("id", "0"),
            ]),
            Bytes::from_static(b"body\0with nul"),
        );
        let mut out = BytesMut::new();
        enc.encode_frame(&f, &mut out);
        write(&format!("frame-{name}"), 0xf8, &out);
    }
    write("heartbeats", 0x18, b"\n\r\n\0\nSEND\n\n\0\n\n");
    write(
        "send-content-length",
        0xf8,
        b"SEND\ncontent-length:+0005\ndestination:/topic/t\n\n\0\0\0\0\0\0\r\n",
    );
    write("escapes-1.1", 0x1b, b"SEND\nk\\c:v\\n\\\\\\c\n\n\0");
    write("unknown-command", 0xf8, b"HELLO WORLD\nk:v\n\n\0");
}
