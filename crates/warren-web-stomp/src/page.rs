//! `GET /`: a page that shows a feed, the README's EventSource example made
//! runnable (`http://localhost:15674/?destination=/topic/news.%23`).
//!
//! The page itself asks for credentials (401 with `WWW-Authenticate`): the
//! browser prompts once, then sends them with the page's `/sse` request, which
//! an `EventSource` cannot do by itself.

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::{basic_credentials, CHALLENGE};
use crate::{ClientEnds, State};

const PAGE: &str = include_str!("page.html");

pub async fn index(
    state: State,
    ConnectInfo(ClientEnds(ends)): ConnectInfo<ClientEnds>,
    headers: HeaderMap,
) -> Response {
    let known = basic_credentials(&headers).is_some_and(|(user, password)| {
        state
            .0
            .broker
            .authenticate(&user, &password, Some(ends.peer.ip()))
            .is_ok()
    });
    if !known {
        return challenge();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// 401 with a Basic challenge: browsers prompt for a user name and password.
pub fn challenge() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "credentials required\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    r
}
