//! The AMQP listener: accepts sockets and spawns a connection task for each.

use crate::connection::serve_connection;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::info;
use warren_core::Broker;

/// Accept AMQP connections forever. Each connection runs on tokio's multi-thread
/// runtime, so connections spread over all cores.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "AMQP 0-9-1 listener started");
    }
    warren_core::net::accept_loop(listener, |socket, ends| {
        tokio::spawn(serve_connection(broker.clone(), socket, ends));
    })
    .await
}

/// Accept AMQP 0-9-1 connections over TLS forever: the same connection code,
/// over warren-tls's stream.
pub async fn serve_tls(listener: TcpListener, broker: Arc<Broker>, tls: Arc<warren_tls::Tls>) {
    warren_tls::accept_loop(listener, tls, "AMQP 0-9-1", move |stream, ends| {
        serve_connection(broker.clone(), stream, ends)
    })
    .await
}
