//! What an idle connection is made of, printed (`cargo test --release -p
//! warren-mqtt sizes -- --nocapture`): the connection's future (which holds
//! the writer's, polled in the same task) is most of an idle connection's
//! memory, so a change that grows it shows here. Sizes in a debug build are
//! larger.
//!
//! What counts is the task's cell: the future plus ~120 B of tokio's header
//! and trailer, rounded up to 128 B, then to jemalloc's size class (…, 1,536,
//! 1,792, 2,048, 2,560, 3,072, 3,584). In a release build the future is
//! 1,664 B and the cell 1,792 B (it was 3,016 / 3,200 B: a 3,584 B
//! allocation). The margin is small: somewhere between 8 and 72 B more and
//! every connection pays 2,048 again. The per-state layout: `cargo +nightly
//! rustc -p warren-mqtt --release --lib -- -Zprint-type-sizes`.

fn future_size<A, B, C, Fut, F: FnOnce(A, B, C) -> Fut>(_: &F) -> usize {
    std::mem::size_of::<Fut>()
}

#[allow(clippy::type_complexity)]
fn future_size6<A, B, C, D, E, G, Fut, F: FnOnce(A, B, C, D, E, G) -> Fut>(_: &F) -> usize {
    std::mem::size_of::<Fut>()
}

#[test]
fn sizes() {
    let connection = future_size(&crate::connection::serve_connection::<tokio::net::TcpStream>);
    let writer = future_size6(
        &warren_core::outlet::run_writer::<
            tokio::io::WriteHalf<tokio::net::TcpStream>,
            crate::writer::Outbound,
            crate::writer::MqttWire,
        >,
    );
    println!(
        "connection future {connection} B, writer future {writer} B, Packet {} B, \
         Outbound {} B, Session {} B, Outgoing {} B",
        std::mem::size_of::<crate::Packet>(),
        std::mem::size_of::<crate::writer::Outbound>(),
        std::mem::size_of::<crate::session::Session>(),
        std::mem::size_of::<crate::delivery::Outgoing>(),
    );
    // A packet without properties must stay small (they are boxed).
    assert!(std::mem::size_of::<crate::Packet>() <= 128);
}
