//! Warren's management HTTP API: RabbitMQ's management plugin API (`/api/...`
//! on port 15672) over the broker core, so `rabbitmqadmin`, scripts and
//! tools written against RabbitMQ work unchanged.
//!
//! Laid out as LavinMQ's `http/controller/`: one controller per resource in
//! [`controller`], each a set of axum handlers that authenticate the caller
//! ([`auth::Caller`]), call the core (`warren_core::{admin, vhost, policy,
//! export}`) and render RabbitMQ's JSON. No state of its own: every figure is
//! read from the core at request time. Errors are RabbitMQ's JSON bodies
//! ([`error`]); list endpoints page, sort, filter and project as RabbitMQ's
//! ([`list`]).
//!
//! Not yet: `/api/connections`, `/api/channels`, `/api/consumers` and
//! `message_stats` figures, which wait for the core's connection registry
//! metadata and per-object counters (see `controller::{connections,
//! channels, consumers}`).

pub mod auth;
pub mod body;
pub mod controller;
pub mod error;
pub mod list;
pub mod prometheus;
pub mod props;
pub mod security;
pub mod ui;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use controller::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

use warren_core::Broker;

/// A listener the broker runs, as `/api/overview` lists it.
#[derive(Debug, Clone)]
pub struct Listener {
    /// RabbitMQ's protocol name: `amqp`, `stomp`, `http/web-stomp`, `http`.
    pub protocol: String,
    pub addr: SocketAddr,
}

impl Listener {
    pub fn new(protocol: &str, addr: SocketAddr) -> Listener {
        Listener {
            protocol: protocol.into(),
            addr,
        }
    }
}

/// What every handler shares.
pub struct Http {
    pub broker: Arc<Broker>,
    pub listeners: Vec<Listener>,
    /// The node name (`warren@HOST`), as RabbitMQ's `rabbit@HOST`.
    pub node: String,
    pub started: Instant,
    /// Other origins whose pages may make state-changing calls (see
    /// security.rs).
    pub origins: warren_web::Origins,
}

impl Http {
    pub fn new(broker: Arc<Broker>, listeners: Vec<Listener>) -> Arc<Http> {
        Http::with_origins(broker, listeners, warren_web::Origins::Any)
    }

    /// [`new`](Self::new), letting the pages of `origins` make
    /// state-changing calls.
    pub fn with_origins(
        broker: Arc<Broker>,
        listeners: Vec<Listener>,
        origins: warren_web::Origins,
    ) -> Arc<Http> {
        Arc::new(Http {
            origins,
            listeners,
            // A cluster member goes by its cluster name (n1), as RabbitMQ's
            // API names nodes by their Erlang node names.
            node: broker
                .replicator()
                .map(|r| r.node_name())
                .unwrap_or_else(node_name),
            broker,
            started: Instant::now(),
        })
    }
}

/// The node name, `warren@HOST` (RabbitMQ's `rabbit@HOST`).
pub fn node_name() -> String {
    format!("warren@{}", warren_core::net::hostname())
}

/// Every route of the API.
pub fn router(http: Arc<Http>) -> Router {
    let origins = http.origins.clone();
    Router::new()
        .route("/api/overview", get(overview::show))
        .route("/api/whoami", get(whoami::show))
        .route("/api/nodes", get(nodes::list))
        .route("/api/cluster-status", get(nodes::cluster_status))
        .route(
            "/api/cluster/nodes/{node}",
            axum::routing::put(nodes::join).delete(nodes::forget),
        )
        .route("/api/nodes/{node}", get(nodes::show))
        .route("/api/vhosts", get(vhosts::list))
        .route(
            "/api/vhosts/{vhost}",
            get(vhosts::show).put(vhosts::put).delete(vhosts::delete),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(permissions::of_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::list_vhost),
        )
        .route("/api/vhosts/{vhost}/channels", get(channels::list_vhost))
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::show).delete(connections::delete),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::channels),
        )
        .route("/api/channels", get(channels::list))
        .route("/api/channels/{name}", get(channels::show))
        .route("/api/consumers", get(consumers::list))
        .route("/api/consumers/{vhost}", get(consumers::list_vhost))
        .route("/api/users", get(users::list))
        .route(
            "/api/users/without-permissions",
            get(users::without_permissions),
        )
        .route("/api/users/bulk-delete", post(users::bulk_delete))
        .route(
            "/api/users/{user}",
            get(users::show).put(users::put).delete(users::delete),
        )
        .route("/api/users/{user}/permissions", get(permissions::of_user))
        .route("/api/permissions", get(permissions::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::show)
                .put(permissions::put)
                .delete(permissions::delete),
        )
        .route("/api/exchanges", get(exchanges::list))
        .route("/api/exchanges/{vhost}", get(exchanges::list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::show)
                .put(exchanges::put)
                .delete(exchanges::delete),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(exchanges::bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(exchanges::bindings_destination),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(exchanges::publish),
        )
        .route("/api/queues", get(queues::list))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::show).put(queues::put).delete(queues::delete),
        )
        .route("/api/queues/{vhost}/{name}/bindings", get(queues::bindings))
        .route(
            "/api/queues/{vhost}/{name}/members/{node}",
            axum::routing::put(queue_members::add).delete(queue_members::remove),
        )
        .route("/api/queues/{vhost}/{name}/get", post(queues::get_messages))
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(queues::purge),
        )
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}",
            get(bindings::between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}/{props}",
            get(bindings::show).delete(bindings::delete),
        )
        .route("/api/policies", get(policies::list))
        .route("/api/policies/{vhost}", get(policies::list_vhost))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::show)
                .put(policies::put)
                .delete(policies::delete),
        )
        .route("/api/operator-policies", get(operator_policies::list))
        .route(
            "/api/operator-policies/{vhost}",
            get(operator_policies::list_vhost),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(operator_policies::show)
                .put(operator_policies::put)
                .delete(operator_policies::delete),
        )
        .route("/api/topic-permissions", get(topic_permissions::list))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(topic_permissions::show)
                .put(topic_permissions::put)
                .delete(topic_permissions::delete),
        )
        .route(
            "/api/topic-permissions/{vhost}/{user}/{exchange}",
            axum::routing::delete(topic_permissions::delete_exchange),
        )
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(topic_permissions::of_vhost),
        )
        .route(
            "/api/users/{user}/topic-permissions",
            get(topic_permissions::of_user),
        )
        .route("/api/vhost-limits", get(limits::list_vhosts))
        .route("/api/vhost-limits/{vhost}", get(limits::show_vhost))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(limits::put_vhost).delete(limits::delete_vhost),
        )
        .route("/api/user-limits", get(limits::list_users))
        .route("/api/user-limits/{user}", get(limits::show_user))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(limits::put_user).delete(limits::delete_user),
        )
        .route("/api/parameters", get(parameters::list))
        .route(
            "/api/parameters/{component}",
            get(parameters::list_component),
        )
        .route(
            "/api/parameters/{component}/{vhost}",
            get(parameters::list_component_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(parameters::show)
                .put(parameters::put)
                .delete(parameters::delete),
        )
        .route("/api/global-parameters", get(parameters::list_global))
        .route(
            "/api/global-parameters/{name}",
            get(parameters::show_global)
                .put(parameters::put_global)
                .delete(parameters::delete_global),
        )
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .route("/api/aliveness-test/{vhost}", get(aliveness::check))
        .route("/api/health/checks/alarms", get(health::alarms))
        .route("/api/health/checks/local-alarms", get(health::alarms))
        .route(
            "/api/health/checks/virtual-hosts",
            get(health::virtual_hosts),
        )
        .route(
            "/api/health/checks/port-listener/{port}",
            get(health::port_listener),
        )
        // Warren-only: the web UI's topology view in one request.
        .route("/api/warren/topology/{vhost}", get(topology::show))
        // The web UI at `/` (embedded files); RabbitMQ's JSON 404 under /api.
        .fallback(ui::fallback)
        .layer(axum::middleware::from_fn(no_challenge_for_scripts))
        .layer(DefaultBodyLimit::max(body::MAX_BODY))
        // Cross-site state-changing requests are refused before any
        // handler (or body parsing); every response, refusals included,
        // carries the security headers (see security.rs).
        .layer(axum::middleware::from_fn_with_state(
            origins,
            security::same_origin,
        ))
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(http)
}

/// The UI's requests carry `X-Requested-With: XMLHttpRequest`; a failed
/// login then gets its 401 without `WWW-Authenticate`, so the browser shows
/// the UI's login form rather than its own credentials dialog.
async fn no_challenge_for_scripts(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let script = req
        .headers()
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"XMLHttpRequest"));
    let mut resp = next.run(req).await;
    if script {
        resp.headers_mut()
            .remove(axum::http::header::WWW_AUTHENTICATE);
    }
    resp
}

/// Serve the API on `listener` forever. `listeners` are the broker's
/// listeners (this one included), for `/api/overview` and the port health
/// check.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, listeners: Vec<Listener>) {
    serve_with(listener, broker, listeners, None, warren_web::Origins::Any).await
}

/// [`serve`], over HTTPS when `tls` is given (through warren-web's listener,
/// which runs the TLS handshake in each connection's task).
pub async fn serve_with(
    listener: TcpListener,
    broker: Arc<Broker>,
    listeners: Vec<Listener>,
    tls: Option<Arc<warren_tls::Tls>>,
    origins: warren_web::Origins,
) {
    // warren-web's listener (hyper per connection, as axum::serve) for both:
    // it also bounds how long a request head may take (the broker's
    // handshake timeout), which axum::serve does not.
    let timeout = broker.limits.handshake_timeout;
    let app = router(Http::with_origins(broker, listeners, origins));
    warren_web::serve_with(listener, app, "HTTP API", timeout, tls).await;
}
