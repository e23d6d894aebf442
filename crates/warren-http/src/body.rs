//! Request parts as RabbitMQ's handlers take them, with its 400s instead of
//! axum's plain-text rejections: JSON bodies (size-limited, objects only;
//! empty means `{}`), percent-decoded path names and query parameters.

use crate::error::{ApiError, ApiResult};
use crate::list::{ListParams, Query};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Largest request body accepted (RabbitMQ's default is 20 MiB too).
pub const MAX_BODY: usize = 20 * 1024 * 1024;

/// Longest queue, exchange, vhost or user name (AMQP short string).
pub const MAX_NAME: usize = 255;

/// A JSON object body.
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Body> {
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "bad_request",
                    "request body too large",
                )
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(Body(m)),
            _ => Err(ApiError::not_json()),
        }
    }
}

impl Body {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A boolean field; RabbitMQ also takes the strings "true"/"false".
    pub fn bool(&self, key: &str, default: bool) -> ApiResult<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(v) => Err(ApiError::bad_request_term(serde_json::json!([
                "not_boolean",
                v
            ]))),
        }
    }

    pub fn str(&self, key: &str) -> ApiResult<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ApiError::bad_request(format!(
                "{} must be a string, not {}",
                key, v
            ))),
        }
    }

    pub fn required_str(&self, key: &str) -> ApiResult<&str> {
        self.str(key)?.ok_or_else(|| ApiError::key_missing(key))
    }

    /// The `arguments` object as an AMQP table (absent: empty).
    pub fn arguments(&self) -> ApiResult<warren_core::FieldTable> {
        match self.get("arguments") {
            None => Ok(Default::default()),
            Some(v) => warren_core::json::json_to_table(v)
                .ok_or_else(|| ApiError::bad_request("arguments must be an object")),
        }
    }
}

/// Percent-decoded path parameters.
pub struct Names<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Names<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Names<T>> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Names(p.0))
            .map_err(|_| ApiError::bad_request("invalid path"))
    }
}

/// The query string, decoded, with the list parameters checked.
pub struct Params {
    pub query: Query,
    pub list: ListParams,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Params> {
        let query = Query::parse(parts.uri.query());
        let list = ListParams::from_query(&query)?;
        Ok(Params { query, list })
    }
}

/// A name given in a URL or body: at most 255 bytes, as RabbitMQ checks it.
pub fn check_name(kind: &str, name: &str) -> ApiResult<()> {
    if name.len() > MAX_NAME {
        return Err(ApiError::bad_request(format!(
            "{} should be less than 255 bytes, actually was {}\n",
            kind,
            name.len()
        )));
    }
    Ok(())
}

/// The default exchange is `amq.default` in URLs.
pub fn exchange_name(url_name: &str) -> &str {
    if url_name == "amq.default" {
        ""
    } else {
        url_name
    }
}
