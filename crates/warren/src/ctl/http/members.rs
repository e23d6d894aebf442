//! Quorum queue membership commands over the management API, as
//! `rabbitmq-queues`: `add_member`/`delete_member` for one queue, `grow`
//! (add a node to every matching quorum queue that lacks it) and `shrink`
//! (remove a node from every quorum queue it is a member of). Each change
//! is one `PUT`/`DELETE /api/queues/V/Q/members/NODE`.

use super::{encode, Api, Failure};
use serde_json::{json, Value};

/// `add_member` / `delete_member`: one queue of the request's vhost.
pub(super) fn one(api: &Api, request: &Value, vhost: &str, add: bool) -> Result<Value, Failure> {
    let field = |k: &str| {
        request
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Failure::Command(format!("missing {k}")))
    };
    let (queue, node) = (field("queue")?, field("node")?);
    change(api, vhost, &queue, &node, add)?;
    Ok(json!({}))
}

fn change(api: &Api, vhost: &str, queue: &str, node: &str, add: bool) -> Result<(), Failure> {
    let path = format!(
        "/api/queues/{}/{}/members/{}",
        encode(vhost),
        encode(queue),
        encode(node)
    );
    let r = if add {
        api.put(&path, &json!({}))?
    } else {
        api.delete(&path)?
    };
    match r {
        Err(e) if e.not_found() && e.reason.is_empty() => Err(Failure::Command(format!(
            "no queue '{queue}' in vhost '{vhost}'"
        ))),
        r => r.map(|_| ()).map_err(Failure::from),
    }
}

/// `grow NODE all|even` (`--vhost-pattern`, `--queue-pattern`) or
/// `shrink NODE`: every quorum queue of every vhost it applies to, with a
/// line per queue (`vhost`, `name`, `size` before, `result`).
pub(super) fn bulk(api: &Api, request: &Value, grow: bool) -> Result<Value, Failure> {
    let node = request
        .get("node")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Command("missing node".into()))?
        .to_string();
    let pattern = |k: &str| -> Result<regex::Regex, Failure> {
        let p = request.get(k).and_then(Value::as_str).unwrap_or(".*");
        regex::Regex::new(p).map_err(|e| Failure::Command(format!("bad {k}: {e}")))
    };
    let (vhosts, queues) = (pattern("vhost_pattern")?, pattern("queue_pattern")?);
    let even_only = request.get("selection").and_then(Value::as_str) == Some("even");
    let all = api.list("/api/queues?columns=name,vhost,type,members")??;
    let mut out = Vec::new();
    let mut failed = 0;
    for q in all {
        let s = |k: &str| {
            q.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (vhost, name) = (s("vhost"), s("name"));
        if s("type") != "quorum" {
            continue;
        }
        let members: Vec<&str> = q
            .get("members")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let is_member = members.contains(&node.as_str());
        let wanted = if grow {
            !is_member
                && vhosts.is_match(&vhost)
                && queues.is_match(&name)
                && (!even_only || members.len().is_multiple_of(2))
        } else {
            is_member
        };
        if !wanted {
            continue;
        }
        let result = match change(api, &vhost, &name, &node, grow) {
            Ok(()) => "ok".to_string(),
            Err(Failure::Command(e)) => {
                failed += 1;
                e
            }
            Err(t) => return Err(t),
        };
        out.push(json!({"vhost": vhost, "name": name, "size": members.len(), "result": result}));
    }
    if failed > 0 {
        return Err(Failure::Command(format!(
            "{failed} of {} queues failed: {}",
            out.len(),
            Value::Array(out)
        )));
    }
    Ok(json!({ "queues": out }))
}
