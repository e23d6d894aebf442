//! RabbitMQ's JSON errors: `{"error": "...", "reason": "..."}` with the
//! status codes its management plugin uses (taken from RabbitMQ 3.10).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use warren_core::error::code;
use warren_core::BrokerError;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub reason: String,
    /// Send `WWW-Authenticate` (the 401s of a failed login).
    pub challenge: bool,
    /// No body at all (RabbitMQ's 401 without credentials).
    pub empty: bool,
    /// The reason as RabbitMQ prints an Erlang term: a JSON list
    /// (`["not_boolean","yes"]`) rather than a string.
    pub term: Option<serde_json::Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The realm RabbitMQ's management listener names.
pub const REALM: &str = "Basic realm=\"RabbitMQ Management\"";

impl ApiError {
    pub fn new(status: StatusCode, error: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            reason: reason.into(),
            challenge: false,
            empty: false,
            term: None,
        }
    }

    /// 400 whose reason is an Erlang term, as RabbitMQ prints
    /// `{error, {not_boolean, V}}`: `["not_boolean", V]`.
    pub fn bad_request_term(term: serde_json::Value) -> ApiError {
        ApiError {
            term: Some(term.clone()),
            ..ApiError::bad_request(term.to_string())
        }
    }

    /// What a GET of something missing answers: RabbitMQ's exact body.
    pub fn object_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
    }

    /// 404 `not_found` with a reason (missing vhost on a PUT, ...).
    pub fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 401 `not_authorised` (tags or vhost access missing).
    pub fn not_authorised(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "not_authorised", reason)
    }

    /// 401 without credentials: no body, a challenge.
    pub fn no_credentials() -> ApiError {
        ApiError {
            challenge: true,
            empty: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, "", "")
        }
    }

    /// 401 for wrong credentials (RabbitMQ spells this one `not_authorized`).
    pub fn login_failed() -> ApiError {
        ApiError {
            challenge: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, "not_authorized", "Login failed")
        }
    }

    pub fn not_json() -> ApiError {
        ApiError::bad_request("not_json")
    }

    pub fn key_missing(key: &str) -> ApiError {
        ApiError::bad_request(format!("[{{key_missing,{}}}]", key))
    }

    pub fn vhost_access() -> ApiError {
        ApiError::not_authorised("User not authorised to access virtual host")
    }
}

/// A broker error as RabbitMQ's management plugin reports the AMQP error
/// behind it: refusals are 401 `not_authorised` "Access refused.", a
/// missing object 404, everything else (inequivalent declares, in-use, ...)
/// 400 with the AMQP reply text as the reason.
impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> ApiError {
        match e.code {
            code::ACCESS_REFUSED => ApiError::not_authorised("Access refused."),
            code::NOT_FOUND => ApiError::not_found(e.text),
            _ => ApiError::bad_request(e.text),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = if self.empty {
            self.status.into_response()
        } else {
            let reason = self.term.unwrap_or(serde_json::Value::String(self.reason));
            let body = serde_json::json!({"error": self.error, "reason": reason});
            (self.status, axum::Json(body)).into_response()
        };
        if self.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_map_to_rabbitmq_statuses() {
        let e: ApiError = BrokerError::access_refused("x").into();
        assert_eq!(
            (e.status, e.reason.as_str()),
            (StatusCode::UNAUTHORIZED, "Access refused.")
        );
        let e: ApiError = BrokerError::precondition_failed("in use").into();
        assert_eq!(
            (e.status, e.error.as_str()),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
        let e: ApiError = BrokerError::not_found("no").into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }
}
