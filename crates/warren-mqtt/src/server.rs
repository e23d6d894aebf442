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
