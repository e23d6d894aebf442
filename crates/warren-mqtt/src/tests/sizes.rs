//! What an idle connection is made of, printed (`cargo test --release -p
//! warren-mqtt sizes -- --nocapture`): the connection's future (which holds
//! the writer's, polled in the same task) is most of an idle connection's
//! memory, so a change that grows it shows here. Sizes in a debug build are
//! larger.

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
