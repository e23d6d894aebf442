//! Randomised round trips and garbage input.

use super::*;

// ---------------------------------------------------------------------------
// Randomised round trips (a small deterministic PRNG: no extra dependencies)

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

const ANY_OCTET_TASTE: &[u8] = b"abc:\\\n\r\0 \xff-/.";

fn random_frame(rng: &mut Rng, dialect: Dialect) -> Frame {
    let commands = [
        Command::Send,
        Command::Message,
        Command::Subscribe,
        Command::Ack,
        Command::Error,
        Command::Other(Bytes::from_static(b"WHATEVER")),
    ];
    let command = commands[rng.below(commands.len())].clone();
    let mut b = HeadersBuilder::new();
    for _ in 0..rng.below(6) {
        let name = rng.bytes(6, ANY_OCTET_TASTE);
        if name == b"content-length" {
            continue;
        }
        b.push(name, rng.bytes(10, ANY_OCTET_TASTE));
    }
    // Bodies with NULs only where a content-length will be read.
    let with_nuls = match dialect {
        Dialect::RabbitMq => command == Command::Send,
        Dialect::Spec => true,
    };
    let alphabet: &[u8] = if with_nuls { b"\0x\n" } else { b"x\n\r" };
    Frame::new(command, b.build(), Bytes::from(rng.bytes(40, alphabet)))
}

#[test]
fn random_frames_round_trip_in_random_chunks() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..400 {
        let dialect = if round % 2 == 0 {
            Dialect::RabbitMq
        } else {
            Dialect::Spec
        };
        let mut c = codec(dialect);
        c.set_version(Version::V1_2);
        let sent: Vec<Frame> = (0..1 + rng.below(5))
            .map(|_| random_frame(&mut rng, dialect))
            .collect();
        let mut wire = BytesMut::new();
        for f in &sent {
            if rng.below(3) == 0 {
                wire.extend_from_slice(b"\r\n\n");
            }
            c.encode(f, &mut wire).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(50));
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(item) = c.decode(&mut buf).unwrap() {
                got.push(item);
            }
        }
        // The decoder sees the content-length the encoder added.
        let strip = |f: &Frame| {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = f
                .headers
                .iter()
                .filter(|(n, _)| *n != b"content-length")
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            (f.command.clone(), pairs, f.body.clone())
        };
        let got: Vec<_> = frames(got).iter().map(strip).collect();
        let sent: Vec<_> = sent.iter().map(strip).collect();
        assert_eq!(got, sent, "round {round}");
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(42);
    let alphabet = b"SEND\nCONECT:\\\r\0content-length:0123456789 ncr";
    for _ in 0..3000 {
        let input = rng.bytes(120, alphabet);
        for dialect in [Dialect::RabbitMq, Dialect::Spec] {
            let mut c = StompCodec::new(Config {
                dialect,
                limits: Limits {
                    max_header_section: 40,
                    max_headers: 3,
                    max_body: 30,
                },
                trailing_lf: true,
            });
            let chunk = 1 + rng.below(16);
            if let Ok(items) = decode_chunks(&mut c, &input, chunk) {
                for f in frames(items) {
                    let mut out = BytesMut::new();
                    c.encoder().encode_frame(&f, &mut out);
                    assert_eq!(out.len(), c.encoder().encoded_len(&f));
                }
            }
        }
    }
}
