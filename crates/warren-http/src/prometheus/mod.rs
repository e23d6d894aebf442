//! Prometheus metrics, as RabbitMQ's `rabbitmq_prometheus` plugin serves them
//! on port 15692: `/metrics` (aggregated, RabbitMQ 3.10's default
//! `prometheus.return_per_object_metrics = false`) and `/metrics/per-object`
//! (one series per queue, channel and connection).
//!
//! Nothing is registered ahead of time: every scrape walks the core's objects
//! (vhosts → queues, the connection registry → channels) once, reading the
//! same atomics and queue depths the management API reads, and writes the
//! text. So there is no registry of per-object metric handles to keep in sync
//! with queues coming and going, and an idle broker pays nothing between
//! scrapes. Text format 0.0.4 (`text/plain; version=0.0.4`, RabbitMQ's) by
//! default; OpenMetrics 1.0 when the scraper's `Accept` asks for it.
//!
//! The metric names, HELP texts, TYPEs and label sets are RabbitMQ 3.10.8's
//! ([`families`]); what Warren has no data for is left out (see
//! docs/ARCHITECTURE.md, "Prometheus metrics").

mod collect;
mod families;
mod text;

pub use collect::{render, Format, NodeProbe};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;

use warren_core::Broker;

/// What the metrics handlers share.
pub struct Metrics {
    pub broker: Arc<Broker>,
    pub probe: NodeProbe,
}

/// `/metrics` and `/metrics/per-object`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found\n") })
        .with_state(metrics)
}

async fn aggregated(State(m): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    scrape(&m, &headers, false).await
}

async fn per_object(State(m): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    scrape(&m, &headers, true).await
}

async fn scrape(m: &Arc<Metrics>, headers: &HeaderMap, per_object: bool) -> Response {
    let format = Format::from_accept(
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    // Walking 10,000 queues takes a few milliseconds of locks and formatting:
    // keep it off the runtime's worker threads.
    let m2 = m.clone();
    let body =
        tokio::task::spawn_blocking(move || render(&m2.broker, &m2.probe, per_object, format))
            .await
            .unwrap_or_default();
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Serve the metrics on `listener` forever (warren-web's listener, as the
/// API: a request head must arrive within the broker's handshake timeout).
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, probe: NodeProbe) {
    let timeout = broker.limits.handshake_timeout;
    let app = router(Arc::new(Metrics { broker, probe }));
    warren_web::serve(listener, app, "Prometheus", timeout).await;
}

#[cfg(test)]
mod tests;
