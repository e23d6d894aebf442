//! The STOMP listener: accepts sockets and spawns a connection task for each.

use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};
use warren_core::Broker;

use crate::connection::serve_connection;

/// Accept STOMP connections forever. Each connection runs on tokio's
/// multi-thread runtime, so connections spread over all cores.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "STOMP listener started");
    }
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                let name = match socket.local_addr() {
                    Ok(local) => format!("{} -> {}", peer, local),
                    Err(_) => peer.to_string(),
                };
                tokio::spawn(serve_connection(broker.clone(), socket, peer, name));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
