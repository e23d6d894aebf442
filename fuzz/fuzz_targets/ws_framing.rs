//! WebSocket framing as Warren's Web-STOMP and Web-MQTT listeners use it:
//! `warren_web::byte_stream`, the layer that turns a WebSocket into the byte
//! stream an adapter's connection loop decodes, and tungstenite's frame
//! parser (the crate axum uses) under the listeners' 16 MiB limits.
//!
//! Input layout: the first byte configures the run:
//!   bit 0: framing: TextIfUtf8 (Web-STOMP) or Binary (Web-MQTT)
//!   bit 1: the rest is (0) a list of messages and writes, or (1) raw bytes
//!          from a client, parsed by tungstenite as the server side.
//! Message list: `[kind, len, len bytes]...`, kind 0 text (made valid
//! UTF-8), 1 binary, 2 ping, 3 pong, 4 close, 5 a socket error, 6 a write
//! by the adapter (outgoing).
//!
//! Checks: no panic; the input side yields exactly the payloads of the data
//! messages in order (a text message on a binary-only socket, or a socket
//! error, ends it with an error after what came before); each adapter write
//! is exactly one outgoing message with those bytes, text only when the
//! framing allows it and the bytes are UTF-8.

#![no_main]

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, Stream, StreamExt};
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_web::{byte_stream, Framing};

/// A WebSocket stand-in: messages to hand out, and what was sent.
struct Fake {
    input: VecDeque<Result<Message, axum::Error>>,
    sent: Arc<Mutex<Vec<Message>>>,
}

impl Stream for Fake {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.input.pop_front())
    }
}

impl Sink<Message> for Fake {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, m: Message) -> Result<(), axum::Error> {
        self.sent.lock().expect("lock").push(m);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// Feed `input` through `byte_stream`, do `writes`, and check both sides.
async fn run(framing: Framing, input: Vec<Result<Message, axum::Error>>, writes: Vec<Vec<u8>>) {
    // What the reader must yield, and whether it must end in an error.
    let mut want = Vec::new();
    let mut want_err = false;
    for m in &input {
        match m {
            Ok(Message::Text(_)) if framing == Framing::Binary => {
                want_err = true;
                break;
            }
            Ok(Message::Text(t)) => want.extend_from_slice(t.as_str().as_bytes()),
            Ok(Message::Binary(b)) => want.extend_from_slice(b),
            Ok(_) => {}
            Err(_) => {
                want_err = true;
                break;
            }
        }
    }
    let sent = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        input: input.into(),
        sent: sent.clone(),
    };
    let (mut rd, mut wr) = byte_stream(fake, framing);
    let mut got = Vec::new();
    let res = rd.read_to_end(&mut got).await;
    assert_eq!(res.is_err(), want_err, "{res:?}");
    assert_eq!(got, want);
    for w in &writes {
        wr.write_all(w).await.expect("write");
        wr.flush().await.expect("flush");
    }
    let sent = sent.lock().expect("lock");
    let nonempty: Vec<&Vec<u8>> = writes.iter().filter(|w| !w.is_empty()).collect();
    assert_eq!(sent.len(), nonempty.len(), "one message per write");
    for (m, w) in sent.iter().zip(nonempty) {
        match m {
            Message::Text(t) => {
                assert_eq!(framing, Framing::TextIfUtf8);
                assert_eq!(t.as_str().as_bytes(), &w[..]);
            }
            Message::Binary(b) => {
                assert!(framing == Framing::Binary || std::str::from_utf8(w).is_err());
                assert_eq!(&b[..], &w[..]);
            }
            other => panic!("a write sent {other:?}"),
        }
    }
}

/// Raw client bytes through tungstenite (server role, the listeners'
/// limits), its messages through `byte_stream`.
async fn raw(framing: Framing, bytes: &[u8]) {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message as Ts;
    const MAX_MESSAGE: usize = 16 * 1024 * 1024;
    let (mut client, server) = tokio::io::duplex(1 << 20);
    client.write_all(bytes).await.expect("duplex write");
    drop(client);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws =
        tokio_tungstenite::WebSocketStream::from_raw_socket(server, Role::Server, Some(config))
            .await;
    let mut input = Vec::new();
    while let Some(m) = ws.next().await {
        match m {
            Ok(Ts::Text(t)) => input.push(Ok(Message::Text(Utf8Bytes::from(t.as_str())))),
            Ok(Ts::Binary(b)) => input.push(Ok(Message::Binary(b))),
            Ok(Ts::Ping(b)) => input.push(Ok(Message::Ping(b))),
            Ok(Ts::Pong(b)) => input.push(Ok(Message::Pong(b))),
            Ok(Ts::Close(_)) => input.push(Ok(Message::Close(None))),
            Ok(Ts::Frame(_)) => {}
            Err(e) => {
                input.push(Err(axum::Error::new(e)));
                break;
            }
        }
    }
    run(framing, input, Vec::new()).await;
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let framing = if ctl & 1 == 0 {
        Framing::TextIfUtf8
    } else {
        Framing::Binary
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    if ctl & 2 != 0 {
        rt.block_on(raw(framing, rest));
        return;
    }
    let mut input = Vec::new();
    let mut writes = Vec::new();
    let mut p = rest;
    while let [kind, len, tail @ ..] = p {
        let n = (*len as usize).min(tail.len());
        let (payload, next) = tail.split_at(n);
        p = next;
        let b = Bytes::copy_from_slice(payload);
        match kind % 7 {
            0 => input.push(Ok(Message::Text(Utf8Bytes::from(
                String::from_utf8_lossy(payload).into_owned(),
            )))),
            1 => input.push(Ok(Message::Binary(b))),
            2 => input.push(Ok(Message::Ping(b))),
            3 => input.push(Ok(Message::Pong(b))),
            4 => input.push(Ok(Message::Close(None))),
            5 => input.push(Err(axum::Error::new(std::io::Error::other("socket error")))),
            _ => writes.push(payload.to_vec()),
        }
    }
    rt.block_on(run(framing, input, writes));
});
