//! The MQTT listener: accepts sockets and spawns a connection task for each.

use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::info;

use crate::connection::serve_connection;
use crate::registry::Node;

/// Accept MQTT connections forever.
pub async fn serve(listener: TcpListener, node: Arc<Node>) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "MQTT listener started");
    }
    warren_core::net::accept_loop(listener, |socket, ends| {
        tokio::spawn(serve_connection(node.clone(), socket, ends));
    })
    .await
}

/// Accept MQTT connections over TLS forever: the same connection code,
/// over warren-tls's stream.
pub async fn serve_tls(listener: TcpListener, node: Arc<Node>, tls: Arc<warren_tls::Tls>) {
    warren_tls::accept_loop(listener, tls, "MQTT", move |stream, ends| {
        serve_connection(node.clone(), stream, ends)
    })
    .await
}
