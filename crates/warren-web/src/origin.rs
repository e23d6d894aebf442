//! Which web pages may use a web listener: the `Origin` check for
//! Web-STOMP, SSE and Web-MQTT.
//!
//! Why: a browser lets any page it shows open a WebSocket (or an
//! EventSource) to any host, sending the cookies and remembered Basic
//! credentials of that host, and the same-origin policy does not stop it
//! (cross-site WebSocket hijacking). The browser does say who asks: the
//! `Origin` header, which a page cannot forge. RabbitMQ's Web-STOMP and
//! Web-MQTT do not check it, so the default here is to accept every origin
//! too; a deployment serving a known application lists its origins
//! (`[listeners] web_allowed_origins`) and other pages get 403 before any
//! upgrade or login.
//!
//! A request without `Origin` is not from a page's script (native clients,
//! curl, a top-level navigation) and is let through: the check is about
//! browsers lending their credentials, not about who may connect (that is
//! what logins and permissions are for).

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;

/// The origins a web listener accepts.
#[derive(Clone, Debug, Default)]
pub enum Origins {
    /// Every origin (RabbitMQ's behaviour, the default).
    #[default]
    Any,
    /// Only these (`scheme://host[:port]`, compared without case and
    /// without a trailing slash).
    Only(Arc<Vec<String>>),
}

impl Origins {
    /// From the configured list: empty, or containing `*`, means any.
    pub fn new<I: IntoIterator<Item = String>>(list: I) -> Origins {
        let list: Vec<String> = list
            .into_iter()
            .map(|o| normalize(&o))
            .filter(|o| !o.is_empty())
            .collect();
        if list.is_empty() || list.iter().any(|o| o == "*") {
            Origins::Any
        } else {
            Origins::Only(Arc::new(list))
        }
    }

    /// Whether a request with these headers may go on.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Origins::Only(list) = self else {
            return true;
        };
        let mut origins = headers.get_all(header::ORIGIN).iter();
        match (origins.next(), origins.next()) {
            (None, _) => true,
            (Some(v), None) => match v.to_str() {
                Ok(v) => list.iter().any(|o| *o == normalize(v)),
                Err(_) => false,
            },
            // Two Origin headers: not something a browser sends.
            (Some(_), Some(_)) => false,
        }
    }

    /// Whether the request names, in its one `Origin` header, an origin of
    /// the list. False for `Any` and without `Origin`: for callers that
    /// refuse cross-origin requests by default and let only listed pages
    /// through (the management API's state-changing calls, warren-http
    /// security.rs), "any" must not mean "every site".
    pub fn lists(&self, headers: &HeaderMap) -> bool {
        matches!(self, Origins::Only(_))
            && headers.contains_key(header::ORIGIN)
            && self.allows(headers)
    }

    /// `router` with the check in front of every route.
    pub fn guard(&self, router: Router) -> Router {
        match self {
            Origins::Any => router,
            Origins::Only(_) => {
                let origins = self.clone();
                router.layer(axum::middleware::from_fn(
                    move |req: Request, next: Next| {
                        let allowed = origins.allows(req.headers());
                        async move {
                            if allowed {
                                next.run(req).await
                            } else {
                                refused()
                            }
                        }
                    },
                ))
            }
        }
    }
}

fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONNECTION, "close")],
        "Origin not allowed\n",
    )
        .into_response()
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_origin(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ORIGIN, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn any_by_default_and_with_a_star() {
        for o in [
            Origins::default(),
            Origins::new(vec![]),
            Origins::new(vec!["*".into()]),
        ] {
            assert!(matches!(o, Origins::Any));
            assert!(o.allows(&with_origin(&["https://evil.example"])));
        }
    }

    #[test]
    fn only_the_listed_origins() {
        let o = Origins::new(vec![
            "https://App.example/".into(),
            "http://localhost:8080".into(),
        ]);
        assert!(o.allows(&with_origin(&["https://app.example"])));
        assert!(o.allows(&with_origin(&["http://localhost:8080"])));
        assert!(!o.allows(&with_origin(&["http://localhost:8081"])));
        assert!(!o.allows(&with_origin(&["https://app.example.evil"])));
        assert!(!o.allows(&with_origin(&["null"])));
        assert!(!o.allows(&with_origin(&[
            "https://app.example",
            "https://app.example"
        ])));
        // No Origin: not a page's script.
        assert!(o.allows(&HeaderMap::new()));
    }

    #[test]
    fn lists_needs_an_explicit_list_and_an_origin() {
        let page = with_origin(&["https://app.example"]);
        assert!(!Origins::Any.lists(&page));
        let o = Origins::new(vec!["https://app.example".into()]);
        assert!(o.lists(&page));
        assert!(!o.lists(&with_origin(&["https://evil.example"])));
        assert!(!o.lists(&HeaderMap::new()));
        assert!(!o.lists(&with_origin(&[
            "https://app.example",
            "https://app.example"
        ])));
    }
}
