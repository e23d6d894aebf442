//! `/api/bindings[/VHOST]` and `/api/bindings/VHOST/e/SOURCE/q|e/DEST[/PROPS]`:
//! list (the default exchange's implicit bindings included, as RabbitMQ),
//! POST creates (201 with `Location: DEST/PROPS`), DELETE by properties key.

use super::{no_content, ok, vhost_bindings, visible_vhosts, BindingRow};
use crate::auth::Caller;
use crate::body::{check_name, exchange_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use warren_core::permissions::{Access, Resource};
use warren_core::{ShortStr, VHost};

fn listing(c: &Caller, only: Option<&str>, p: &Params) -> ApiResult<Response> {
    let mut items = Vec::new();
    for v in visible_vhosts(c, only)? {
        items.extend(vhost_bindings(&v).iter().map(BindingRow::json));
    }
    Ok(ok(p.list.apply(items)?))
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    listing(&c, None, &p)
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    listing(&c, Some(&vhost), &p)
}

/// The destination type of a `q`/`e` path segment.
fn dest_type(kind: &str) -> ApiResult<&'static str> {
    match kind {
        "q" => Ok("queue"),
        "e" => Ok("exchange"),
        _ => Err(ApiError::object_not_found()),
    }
}

/// Both ends must exist (404 otherwise).
fn check_ends(v: &VHost, source: &str, dtype: &str, dest: &str) -> ApiResult<()> {
    let dest_exists = match dtype {
        "queue" => v.named_queue(dest.as_bytes()).is_some(),
        _ => v.exchange(dest.as_bytes()).is_some(),
    };
    if v.exchange(source.as_bytes()).is_none() || !dest_exists {
        return Err(ApiError::object_not_found());
    }
    Ok(())
}

fn between_rows(v: &VHost, source: &str, dtype: &str, dest: &str) -> Vec<BindingRow> {
    vhost_bindings(v)
        .into_iter()
        .filter(|b| b.source == source && b.destination_type == dtype && b.destination == dest)
        .collect()
}

pub async fn between(
    c: Caller,
    Names((vhost, source, kind, dest)): Names<(String, String, String, String)>,
    p: Params,
) -> ApiResult<Response> {
    let dtype = dest_type(&kind)?;
    let v = c.read_vhost(&vhost)?;
    let source = exchange_name(&source);
    check_ends(&v, source, dtype, &dest)?;
    let items = between_rows(&v, source, dtype, &dest)
        .iter()
        .map(BindingRow::json)
        .collect();
    Ok(ok(p.list.apply(items)?))
}

/// What binding and unbinding need: write on the destination, read on the source.
/// What binding or unbinding needs, as over AMQP: write on the
/// destination, read on the source, and read on the topic (binding key) when
/// the source is a topic exchange with topic permissions.
fn check_bind_access(
    c: &Caller,
    v: &VHost,
    source: &str,
    dtype: &str,
    dest: &str,
    key: &str,
) -> ApiResult<()> {
    let vhost = v.name.to_string_lossy();
    let res = if dtype == "queue" {
        Resource::Queue
    } else {
        Resource::Exchange
    };
    c.check(&vhost, Access::Write, res, dest.as_bytes())?;
    c.check(&vhost, Access::Read, Resource::Exchange, source.as_bytes())?;
    if let Some(x) = v.exchange(source.as_bytes()) {
        c.http
            .broker
            .check_topic(&c.user.name, &vhost, Access::Read, &x, key.as_bytes())?;
    }
    Ok(())
}

pub async fn create(
    c: Caller,
    Names((vhost, source, kind, dest)): Names<(String, String, String, String)>,
    body: Body,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    let dtype = dest_type(&kind)?;
    let v = c.write_vhost(&vhost)?;
    let source = exchange_name(&source).to_string();
    let key = body.str("routing_key")?.unwrap_or("").to_string();
    check_name("routing_key", &key)?;
    let args = body.arguments()?;
    check_bind_access(&c, &v, &source, dtype, &dest, &key)?;
    let (s, d) = (
        ShortStr::from(source.as_str()),
        ShortStr::from(dest.as_str()),
    );
    let conn = c.http.broker.next_connection_id();
    let props = super::props_key(&key, &args);
    let hex = warren_core::store::definitions::table_to_hex(&args);
    let shared = v.exchange(source.as_bytes()).is_some()
        && if dtype == "queue" {
            v.named_queue(dest.as_bytes())
                .is_some_and(|q| !q.options.exclusive)
        } else {
            v.exchange(dest.as_bytes()).is_some()
        };
    if shared && !source.is_empty() {
        super::replicate::replicate(&c, |_| {
            if dtype == "queue" {
                warren_core::meta::MetaOp::BindQueue {
                    vhost: vhost.clone(),
                    queue: dest.clone(),
                    exchange: source.clone(),
                    routing_key: key.clone(),
                    arguments: hex,
                }
            } else {
                warren_core::meta::MetaOp::BindExchange {
                    vhost: vhost.clone(),
                    destination: dest.clone(),
                    source: source.clone(),
                    routing_key: key.clone(),
                    arguments: hex,
                }
            }
        })
        .await?;
    }
    if dtype == "queue" {
        v.bind_queue(&d, &s, ShortStr::from(key.as_str()), args, conn)?;
    } else {
        v.bind_exchange(&d, &s, ShortStr::from(key.as_str()), args)?;
    }
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/{}", url_encode(&dest), url_encode(&props)))
    {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

fn find(
    c: &Caller,
    vhost: &str,
    source: &str,
    kind: &str,
    dest: &str,
    props: &str,
    write: bool,
) -> ApiResult<(std::sync::Arc<VHost>, BindingRow)> {
    let dtype = dest_type(kind)?;
    let v = if write {
        c.write_vhost(vhost)?
    } else {
        c.read_vhost(vhost)?
    };
    let source = exchange_name(source);
    let row = between_rows(&v, source, dtype, dest)
        .into_iter()
        .find(|b| super::props_key(&b.routing_key, &b.arguments) == props)
        .ok_or_else(ApiError::object_not_found)?;
    Ok((v, row))
}

pub async fn show(
    c: Caller,
    Names((vhost, source, kind, dest, props)): Names<(String, String, String, String, String)>,
) -> ApiResult<Response> {
    let (_, row) = find(&c, &vhost, &source, &kind, &dest, &props, false)?;
    Ok(ok(row.json()))
}

pub async fn delete(
    c: Caller,
    Names((vhost, source, kind, dest, props)): Names<(String, String, String, String, String)>,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    let (v, row) = find(&c, &vhost, &source, &kind, &dest, &props, true)?;
    check_bind_access(
        &c,
        &v,
        &row.source,
        row.destination_type,
        &row.destination,
        &row.routing_key,
    )?;
    let (s, d) = (
        ShortStr::from(row.source.as_str()),
        ShortStr::from(row.destination.as_str()),
    );
    let key = ShortStr::from(row.routing_key.as_str());
    let exclusive = row.destination_type == "queue"
        && v.named_queue(d.as_bytes())
            .is_some_and(|q| q.options.exclusive);
    if !exclusive && !row.source.is_empty() {
        let hex = warren_core::store::definitions::table_to_hex(&row.arguments);
        super::replicate::replicate(&c, |_| {
            if row.destination_type == "queue" {
                warren_core::meta::MetaOp::UnbindQueue {
                    vhost: vhost.clone(),
                    queue: row.destination.clone(),
                    exchange: row.source.clone(),
                    routing_key: row.routing_key.clone(),
                    arguments: hex,
                }
            } else {
                warren_core::meta::MetaOp::UnbindExchange {
                    vhost: vhost.clone(),
                    destination: row.destination.clone(),
                    source: row.source.clone(),
                    routing_key: row.routing_key.clone(),
                    arguments: hex,
                }
            }
        })
        .await?;
    }
    if row.destination_type == "queue" {
        let owner = v
            .named_queue(d.as_bytes())
            .and_then(|q| q.owner)
            .unwrap_or(0);
        v.unbind_queue(&d, &s, &key, &row.arguments, owner)?;
    } else {
        v.unbind_exchange(&d, &s, &key, &row.arguments)?;
    }
    Ok(no_content())
}

/// Percent-encode a path segment (unreserved characters stay).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{:02X}", b)),
        }
    }
    out
}
