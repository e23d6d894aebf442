//! `warren ctl --http-url`: the control-bus commands (`warren_core::control`)
//! carried out through the management HTTP API (RabbitMQ's `/api`), with the
//! same answers: `{"ok": true, ...}` with the same fields, or `{"ok": false,
//! "error": TEXT}` with the core's error texts where the API's status tells
//! which error it was. The command is the JSON request the AMQP path
//! publishes (`{"command": "add_user", "vhost": "/", ...}`).

mod members;

use super::client::{self, encode, HttpUrl};
use rustls::ClientConfig;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Why a command did not give an answer.
#[derive(Debug)]
pub enum Failure {
    /// No usable answer from the broker (connection refused, login failed,
    /// not JSON): reported on stderr, as the AMQP path reports its
    /// connection errors.
    Transport(String),
    /// The command failed: `{"ok": false, "error": TEXT}`.
    Command(String),
}

/// An error answer of the API.
struct ApiError {
    status: u16,
    /// RabbitMQ's `error` field (`Object Not Found`, `not_found`, `bad_request`...).
    error: String,
    reason: String,
}

impl ApiError {
    fn not_found(&self) -> bool {
        self.status == 404
    }

    /// The text a command reports when it has nothing more precise.
    fn text(&self) -> String {
        if !self.reason.is_empty() {
            self.reason.clone()
        } else if !self.error.is_empty() {
            self.error.clone()
        } else {
            format!("HTTP status {}", self.status)
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure::Command(e.text())
    }
}

type Call<T> = Result<Result<T, ApiError>, Failure>;

struct Api {
    url: HttpUrl,
    tls: Option<Arc<ClientConfig>>,
}

impl Api {
    /// One request; `Ok(Err(_))` is an error answer of the API.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Call<Value> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = client::request(&self.url, self.tls.as_ref(), method, path, bytes.as_deref())
            .map_err(Failure::Transport)?;
        let parsed: Option<Value> = if r.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice(&r.body) {
                Ok(v) => Some(v),
                Err(_) if (200..300).contains(&r.status) => {
                    return Err(Failure::Transport(format!(
                        "{} {}: the answer is not JSON (is this a management API?)",
                        method, path
                    )))
                }
                Err(_) => None,
            }
        };
        if (200..300).contains(&r.status) {
            return Ok(Ok(parsed.unwrap_or(Value::Null)));
        }
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let e = ApiError {
            status: r.status,
            error: field("error"),
            reason: field("reason"),
        };
        // A failed login (RabbitMQ spells it `not_authorized`, or sends no
        // body) is the HTTP counterpart of a refused AMQP login.
        if r.status == 401 && (e.error.is_empty() || e.error == "not_authorized") {
            return Err(Failure::Transport(format!(
                "login refused for user '{}' ({})",
                self.url.user,
                e.text()
            )));
        }
        Ok(Err(e))
    }

    fn get(&self, path: &str) -> Call<Value> {
        self.call("GET", path, None)
    }

    fn put(&self, path: &str, body: &Value) -> Call<Value> {
        self.call("PUT", path, Some(body))
    }

    fn delete(&self, path: &str) -> Call<Value> {
        self.call("DELETE", path, None)
    }

    /// Whether `GET path` finds something (404: no).
    fn exists(&self, path: &str) -> Result<bool, Failure> {
        match self.get(path)? {
            Ok(_) => Ok(true),
            Err(e) if e.not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A GET whose answer must be a list.
    fn list(&self, path: &str) -> Call<Vec<Value>> {
        Ok(self.get(path)?.map(|v| match v {
            Value::Array(a) => a,
            _ => Vec::new(),
        }))
    }
}

/// The vhost-limit commands over `/api/vhost-limits/V[/NAME]`: setting
/// replaces every limit (those not given are deleted), as rabbitmqctl's.
fn vhost_limits(api: &Api, command: &str, vhost: &str, request: &Value) -> Result<Value, Failure> {
    let v = encode(vhost);
    let current = match api.list(&format!("/api/vhost-limits/{}", v))? {
        Err(e) if e.not_found() => {
            return Err(Failure::Command(format!(
                "Virtual host '{}' does not exist",
                vhost
            )))
        }
        r => r?,
    };
    let current: Map<String, Value> = current
        .first()
        .and_then(|l| l.get("value"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if command == "list_vhost_limits" {
        return Ok(json!({ "limits": current }));
    }
    let wanted = match command {
        "set_vhost_limits" => request
            .get("limits")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| Failure::Command("missing limits object".into()))?,
        _ => Map::new(),
    };
    for name in current.keys().filter(|k| !wanted.contains_key(*k)) {
        api.delete(&format!("/api/vhost-limits/{}/{}", v, encode(name)))??;
    }
    for (name, value) in &wanted {
        let path = format!("/api/vhost-limits/{}/{}", v, encode(name));
        api.put(&path, &json!({ "value": value }))??;
    }
    Ok(json!({}))
}

/// Run `request` (the AMQP path's JSON command) against the API at `url`
/// (over TLS with `tls` for an https:// URL).
pub fn execute(
    url: HttpUrl,
    tls: Option<Arc<ClientConfig>>,
    request: &Value,
) -> Result<Value, Failure> {
    let api = Api { url, tls };
    let field = |k: &str| -> Result<String, Failure> {
        request
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Failure::Command(format!("missing {}", k)))
    };
    let vhost = request
        .get("vhost")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_string();
    let v = encode(&vhost);
    let no_vhost = || Failure::Command(format!("no vhost '{}'", vhost));
    let no_user = |u: &str| Failure::Command(format!("User \"{}\" does not exist", u));
    let command = field("command")?;
    let mut answer = match command.as_str() {
        "add_vhost" => {
            let name = field("name")?;
            if name.is_empty() || name.len() > 255 {
                return Err(Failure::Command(
                    "vhost name must be 1 to 255 bytes long".into(),
                ));
            }
            api.put(&format!("/api/vhosts/{}", encode(&name)), &json!({}))??;
            json!({})
        }
        "delete_vhost" => {
            let name = field("name")?;
            match api.delete(&format!("/api/vhosts/{}", encode(&name)))? {
                Err(e) if e.not_found() => {
                    return Err(Failure::Command(format!(
                        "Virtual host '{}' does not exist",
                        name
                    )))
                }
                r => r?,
            };
            json!({})
        }
        "cluster_status" => api.call("GET", "/api/cluster-status", None)??,
        "join_cluster" => {
            let name = field("name")?;
            let addr = field("addr")?;
            api.put(
                &format!("/api/cluster/nodes/{}", encode(&name)),
                &json!({ "addr": addr }),
            )??;
            json!({})
        }
        "add_member" => members::one(&api, request, &vhost, true)?,
        "delete_member" => members::one(&api, request, &vhost, false)?,
        "grow" => members::bulk(&api, request, true)?,
        "shrink" => members::bulk(&api, request, false)?,
        "forget_cluster_node" => {
            let name = field("name")?;
            api.delete(&format!("/api/cluster/nodes/{}", encode(&name)))??;
            json!({})
        }
        "list_vhosts" => {
            let names: Vec<Value> = api
                .list("/api/vhosts?columns=name")??
                .into_iter()
                .filter_map(|v| v.get("name").cloned())
                .collect();
            json!({ "vhosts": names })
        }
        "add_user" => {
            let name = field("name")?;
            let password = field("password")?;
            if name.is_empty() {
                return Err(Failure::Command("user name must not be empty".into()));
            }
            let path = format!("/api/users/{}", encode(&name));
            // PUT would update an existing user: add_user refuses instead.
            if api.exists(&path)? {
                return Err(Failure::Command(format!(
                    "User \"{}\" already exists",
                    name
                )));
            }
            api.put(&path, &json!({"password": password, "tags": ""}))??;
            json!({})
        }
        "delete_user" => {
            let name = field("name")?;
            match api.delete(&format!("/api/users/{}", encode(&name)))? {
                Err(e) if e.not_found() => return Err(no_user(&name)),
                r => r?,
            };
            json!({})
        }
        "change_password" | "set_user_tags" => {
            // The API's PUT replaces both the password and the tags: keep
            // the one the command does not change.
            let name = field("name")?;
            let path = format!("/api/users/{}", encode(&name));
            let user = match api.get(&path)? {
                Err(e) if e.not_found() => return Err(no_user(&name)),
                r => r?,
            };
            let mut body = Map::new();
            if command == "change_password" {
                body.insert("password".into(), json!(field("password")?));
                body.insert("tags".into(), json!(tags_of(&user).join(",")));
            } else {
                let hash = user.get("password_hash").cloned().unwrap_or(json!(""));
                body.insert("password_hash".into(), hash);
                if let Some(alg) = user.get("hashing_algorithm") {
                    body.insert("hashing_algorithm".into(), alg.clone());
                }
                let tags: Vec<&str> = request
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                body.insert("tags".into(), json!(tags.join(",")));
            }
            api.put(&path, &Value::Object(body))??;
            json!({})
        }
        "list_users" => {
            let users: Vec<Value> = api
                .list("/api/users?columns=name,tags")??
                .iter()
                .map(|u| json!({"name": u.get("name").cloned().unwrap_or_default(), "tags": tags_of(u)}))
                .collect();
            json!({ "users": users })
        }
        "set_permissions" => {
            let user = field("user")?;
            let body = json!({
                "configure": field("configure")?,
                "write": field("write")?,
                "read": field("read")?,
            });
            let path = format!("/api/permissions/{}/{}", v, encode(&user));
            match api.put(&path, &body)? {
                Ok(_) => {}
                Err(e) if e.reason == "vhost_or_user_not_found" => {
                    return Err(missing_user_or_vhost(&api, &user, &vhost)?)
                }
                Err(e) => return Err(e.into()),
            }
            json!({})
        }
        "clear_permissions" => {
            let user = field("user")?;
            let path = format!("/api/permissions/{}/{}", v, encode(&user));
            match api.delete(&path)? {
                Ok(_) => {}
                // No permission to clear is fine, a missing user or vhost not.
                Err(e) if e.not_found() => {
                    if let Some(f) = missing_user_or_vhost_opt(&api, &user, &vhost)? {
                        return Err(f);
                    }
                }
                Err(e) => return Err(e.into()),
            }
            json!({})
        }
        "list_permissions" => {
            let perms = match api.list(&format!("/api/vhosts/{}/permissions", v))? {
                Err(e) if e.not_found() => {
                    return Err(Failure::Command(format!(
                        "Virtual host '{}' does not exist",
                        vhost
                    )))
                }
                r => r?,
            };
            json!({ "permissions": perms.iter().map(permission).collect::<Vec<_>>() })
        }
        "list_user_permissions" => {
            let user = field("user")?;
            let perms = match api.list(&format!("/api/users/{}/permissions", encode(&user)))? {
                Err(e) if e.not_found() => return Err(no_user(&user)),
                r => r?,
            };
            json!({ "permissions": perms.iter().map(permission).collect::<Vec<_>>() })
        }
        "set_policy" => {
            let name = field("name")?;
            let definition = match request.get("definition") {
                Some(d @ Value::Object(_)) => d.clone(),
                _ => return Err(Failure::Command("missing definition object".into())),
            };
            let body = json!({
                "pattern": field("pattern")?,
                "definition": definition,
                "priority": request.get("priority").and_then(Value::as_i64).unwrap_or(0),
                "apply-to": request.get("apply_to").and_then(Value::as_str).unwrap_or("all"),
            });
            match api.put(&format!("/api/policies/{}/{}", v, encode(&name)), &body)? {
                Ok(_) => {}
                Err(e) if e.not_found() => return Err(no_vhost()),
                Err(e) => {
                    // "Validation failed\n\n<the core's text>\n", HTML-escaped
                    // as RabbitMQ's.
                    let text = e.text().replace("&lt;", "<").replace("&gt;", ">");
                    let core = text
                        .strip_prefix("Validation failed\n\n")
                        .map(|t| t.trim_end_matches('\n').to_string());
                    return Err(Failure::Command(core.unwrap_or(text)));
                }
            }
            json!({})
        }
        "clear_policy" => {
            let name = field("name")?;
            match api.delete(&format!("/api/policies/{}/{}", v, encode(&name)))? {
                Ok(_) => {}
                Err(e) if e.not_found() && e.reason == "vhost_not_found" => return Err(no_vhost()),
                Err(e) if e.not_found() => {
                    return Err(Failure::Command(format!(
                        "no policy '{}' in vhost '{}'",
                        name, vhost
                    )))
                }
                Err(e) => return Err(e.into()),
            }
            json!({})
        }
        "list_policies" => {
            let policies = match api.list(&format!("/api/policies/{}", v))? {
                Err(e) if e.not_found() => return Err(no_vhost()),
                r => r?,
            };
            let policies: Vec<Value> = policies
                .iter()
                .map(|p| {
                    let f = |k: &str| p.get(k).cloned().unwrap_or_default();
                    json!({
                        "vhost": f("vhost"),
                        "name": f("name"),
                        "pattern": f("pattern"),
                        "apply_to": f("apply-to"),
                        "priority": f("priority"),
                        "definition": f("definition"),
                    })
                })
                .collect();
            json!({ "policies": policies })
        }
        "trace_on" | "trace_off" => {
            // PUT would create a missing vhost.
            let path = format!("/api/vhosts/{}", v);
            if !api.exists(&format!("{}?columns=name", path))? {
                return Err(no_vhost());
            }
            api.put(&path, &json!({"tracing": command == "trace_on"}))??;
            json!({})
        }
        "list_queues" => {
            let path = format!(
                "/api/queues/{}?columns=name,messages_ready,consumers,durable,type,leader,members,online",
                v
            );
            let queues = match api.list(&path)? {
                Err(e) if e.not_found() => return Err(no_vhost()),
                r => r?,
            };
            let queues: Vec<Value> = queues
                .iter()
                .map(|q| {
                    let f = |k: &str| q.get(k).cloned().unwrap_or_default();
                    let mut line = json!({
                        "name": f("name"),
                        "messages": f("messages_ready"),
                        "consumers": f("consumers"),
                        "durable": f("durable"),
                        "type": q.get("type").cloned().unwrap_or(json!("classic")),
                    });
                    // A quorum queue's replication, as rabbitmqctl
                    // list_queues leader members online shows it.
                    for k in ["leader", "members", "online"] {
                        if let Some(v) = q.get(k) {
                            line[k] = v.clone();
                        }
                    }
                    line
                })
                .collect();
            json!({ "queues": queues })
        }
        // Commands only the HTTP API offers.
        "list_exchanges" => {
            let path = format!(
                "/api/exchanges/{}?columns=name,type,durable,auto_delete,internal,arguments",
                v
            );
            let exchanges = match api.list(&path)? {
                Err(e) if e.not_found() => return Err(no_vhost()),
                r => r?,
            };
            json!({ "exchanges": exchanges })
        }
        "list_bindings" => {
            let bindings = match api.list(&format!("/api/bindings/{}", v))? {
                Err(e) if e.not_found() => return Err(no_vhost()),
                r => r?,
            };
            let bindings: Vec<Value> = bindings
                .iter()
                .map(|b| {
                    let f = |k: &str| b.get(k).cloned().unwrap_or_default();
                    json!({
                        "source": f("source"),
                        "destination": f("destination"),
                        "destination_type": f("destination_type"),
                        "routing_key": f("routing_key"),
                        "arguments": f("arguments"),
                    })
                })
                .collect();
            json!({ "bindings": bindings })
        }
        "purge_queue" | "delete_queue" => {
            let name = field("name")?;
            let mut path = format!("/api/queues/{}/{}", v, encode(&name));
            if command == "purge_queue" {
                path.push_str("/contents");
            } else {
                let flag = |k: &str| request.get(k).and_then(Value::as_bool).unwrap_or(false);
                let mut query = Vec::new();
                if flag("if_empty") {
                    query.push("if-empty=true");
                }
                if flag("if_unused") {
                    query.push("if-unused=true");
                }
                if !query.is_empty() {
                    path = format!("{}?{}", path, query.join("&"));
                }
            }
            match api.delete(&path)? {
                Ok(_) => {}
                Err(e) if e.not_found() && e.error == "Object Not Found" => {
                    return Err(Failure::Command(format!(
                        "no queue '{}' in vhost '{}'",
                        name, vhost
                    )))
                }
                Err(e) if e.not_found() => return Err(no_vhost()),
                Err(e) => return Err(e.into()),
            }
            json!({})
        }
        "export_definitions" => {
            let defs = api.get("/api/definitions")??;
            json!({ "definitions": defs })
        }
        "import_definitions" => {
            let defs = request
                .get("definitions")
                .ok_or_else(|| Failure::Command("missing definitions".into()))?;
            api.call("POST", "/api/definitions", Some(defs))??;
            json!({})
        }
        "set_vhost_limits" | "clear_vhost_limits" | "list_vhost_limits" => {
            vhost_limits(&api, &command, &vhost, request)?
        }
        other => return Err(Failure::Command(format!("unknown command '{}'", other))),
    };
    if let Some(o) = answer.as_object_mut() {
        o.insert("ok".into(), Value::Bool(true));
    }
    Ok(answer)
}

/// A user's tags as a list: RabbitMQ 3.10 sends a list, older versions a
/// comma-separated string.
fn tags_of(user: &Value) -> Vec<String> {
    match user.get("tags") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A permission as the core lists it (`PermissionDef`).
fn permission(p: &Value) -> Value {
    let f = |k: &str| p.get(k).cloned().unwrap_or_default();
    json!({
        "user": f("user"),
        "vhost": f("vhost"),
        "configure": f("configure"),
        "write": f("write"),
        "read": f("read"),
    })
}

/// The core's error for a permission change whose user or vhost is missing
/// (the API only says one of them is).
fn missing_user_or_vhost_opt(
    api: &Api,
    user: &str,
    vhost: &str,
) -> Result<Option<Failure>, Failure> {
    if !api.exists(&format!("/api/users/{}", encode(user)))? {
        return Ok(Some(Failure::Command(format!(
            "User {} does not exist",
            user
        ))));
    }
    if !api.exists(&format!("/api/vhosts/{}?columns=name", encode(vhost)))? {
        return Ok(Some(Failure::Command(format!(
            "Virtual host {} does not exist",
            vhost
        ))));
    }
    Ok(None)
}

fn missing_user_or_vhost(api: &Api, user: &str, vhost: &str) -> Result<Failure, Failure> {
    Ok(missing_user_or_vhost_opt(api, user, vhost)?
        .unwrap_or_else(|| Failure::Command("vhost_or_user_not_found".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_as_lists_or_strings() {
        assert_eq!(tags_of(&json!({"tags": ["a", "b"]})), vec!["a", "b"]);
        assert_eq!(tags_of(&json!({"tags": "a, b,"})), vec!["a", "b"]);
        assert!(tags_of(&json!({"tags": ""})).is_empty());
        assert!(tags_of(&json!({})).is_empty());
    }

    #[test]
    fn unreachable_broker_is_a_transport_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{}", port)).unwrap();
        match execute(url, None, &json!({"command": "list_vhosts"})) {
            Err(Failure::Transport(_)) => {}
            other => panic!("{:?}", other),
        }
    }
}
