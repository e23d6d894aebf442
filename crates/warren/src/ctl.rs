//! `warren ctl`: management commands against a running broker.
//!
//! Two ways to reach it, with the same commands and the same JSON answers:
//!
//! * `--http-url` (the default): the management HTTP API (RabbitMQ's `/api`),
//!   with a small blocking HTTP client ([`client`]); [`http`] turns each
//!   command into API calls. The API's rules apply: HTTP Basic login, tags as
//!   in RabbitMQ's management plugin.
//! * `--amqp-url`: each command is a JSON request published to the
//!   `amq.warren.control` pseudo-exchange with a direct reply-to address; the
//!   broker answers with JSON (`warren_core::control`). Authentication is the
//!   AMQP login: user, vhost and permission commands need the `administrator`
//!   tag, the others `administrator` or `policymaker`.
//!
//! Command names mirror `rabbitmqctl` (`add_user` → `add-user`, `-p VHOST` as
//! there).

mod client;
mod http;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;
use warren_amqp::codec::{BasicConsume, BasicPublish, Frame, Method};
use warren_core::{BasicProperties, ShortStr};
use warren_perf::client::Connection;

/// The management API `warren ctl` talks to when given no URL.
const DEFAULT_HTTP_URL: &str = "http://guest:guest@127.0.0.1:15672";

#[derive(Parser)]
pub struct CtlArgs {
    /// Manage the broker through its management HTTP API,
    /// http(s)://USER:PASSWORD@HOST:PORT (env WARREN_HTTP_URL; the default when no
    /// URL is given: http://guest:guest@127.0.0.1:15672).
    #[arg(long, conflicts_with = "amqp_url")]
    http_url: Option<String>,
    /// Manage the broker over AMQP instead (the amq.warren.control exchange),
    /// e.g. amqp://guest:guest@127.0.0.1:5672/%2F (env WARREN_AMQP_URL, used when
    /// WARREN_HTTP_URL is not set).
    #[arg(long)]
    amqp_url: Option<String>,
    /// https:// API: CA certificates (PEM) its certificate must chain to.
    #[arg(long, env = "WARREN_CTL_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// https:// API: accept any certificate (no verification; for a test
    /// machine only).
    #[arg(long, env = "WARREN_CTL_TLS_INSECURE")]
    tls_insecure: bool,
    /// https:// API: a client certificate (PEM), for a listener that asks for
    /// one (`--tls-verify peer --tls-fail-if-no-peer-cert`).
    #[arg(long, requires = "tls_key", env = "WARREN_CTL_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// https:// API: the client certificate's key (PEM).
    #[arg(long, requires = "tls_cert", env = "WARREN_CTL_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// Virtual host the command applies to (`-p` as in rabbitmqctl).
    #[arg(long, short = 'p', global = true, default_value = "/")]
    vhost: String,
    #[command(subcommand)]
    command: CtlCommand,
}

/// Where the commands go.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Http(String),
    Amqp(String),
}

/// `--http-url`, then `--amqp-url`, then `WARREN_HTTP_URL`, then
/// `WARREN_AMQP_URL`, else the default HTTP API: a flag beats the
/// environment, so scripts passing `--amqp-url` keep using AMQP.
fn target(args: &CtlArgs, env: impl Fn(&str) -> Option<String>) -> Target {
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(u) = &args.http_url {
        Target::Http(u.clone())
    } else if let Some(u) = &args.amqp_url {
        Target::Amqp(u.clone())
    } else if let Some(u) = env("WARREN_HTTP_URL") {
        Target::Http(u)
    } else if let Some(u) = env("WARREN_AMQP_URL") {
        Target::Amqp(u)
    } else {
        Target::Http(DEFAULT_HTTP_URL.into())
    }
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Set (or replace) a policy, like `rabbitmqctl set_policy NAME PATTERN DEFINITION`.
    SetPolicy {
        name: String,
        /// Regular expression matched against queue / exchange names.
        pattern: String,
        /// JSON object, e.g. '{"message-ttl": 60000, "dead-letter-exchange": "dlx"}'.
        definition: String,
        #[arg(long, default_value = "all")]
        apply_to: String,
        #[arg(long, default_value_t = 0)]
        priority: i64,
    },
    /// Remove a policy.
    ClearPolicy { name: String },
    /// List the vhost's policies.
    ListPolicies,
    /// Turn the firehose tracer (amq.rabbitmq.trace) on for the vhost.
    TraceOn,
    /// Turn the firehose tracer off.
    TraceOff,
    /// List queues with their message and consumer counts.
    ListQueues,
    /// Create a vhost (nothing happens if it exists, as in rabbitmqctl).
    AddVhost { name: String },
    /// Delete a vhost with everything in it; its connections are closed.
    DeleteVhost { name: String },
    /// List vhosts.
    ListVhosts,
    /// The cluster's nodes (running or not) and the metadata group's leader,
    /// as JSON (`rabbitmqctl cluster_status`). A single node lists itself.
    ClusterStatus,
    /// Add a started node (with `--seed-nodes` naming this cluster's nodes)
    /// to the cluster as a voting member: `join n4 127.0.0.1:25675`.
    Join { name: String, addr: String },
    /// Remove a node from the cluster's membership (a dead one, before
    /// replacing it), like `rabbitmqctl forget_cluster_node`.
    ForgetNode { name: String },
    /// Add NODE to every quorum queue that lacks it, as `rabbitmq-queues
    /// grow NODE all|even`: `all`, `even` (only queues with an even number
    /// of members) or a queue-name regular expression.
    Grow {
        node: String,
        #[arg(default_value = "all")]
        selection: String,
        /// Only vhosts matching this regular expression.
        #[arg(long, default_value = ".*")]
        vhost_pattern: String,
        /// Only queues matching this regular expression.
        #[arg(long, default_value = ".*")]
        queue_pattern: String,
    },
    /// Remove NODE from every quorum queue it is a member of
    /// (`rabbitmq-queues shrink NODE`).
    Shrink { node: String },
    /// Add NODE to quorum queue QUEUE of the vhost (-p), as
    /// `rabbitmq-queues add_member`.
    AddMember { queue: String, node: String },
    /// Remove NODE from quorum queue QUEUE of the vhost (-p), as
    /// `rabbitmq-queues delete_member`.
    DeleteMember { queue: String, node: String },
    /// Create a user (no tags, no permissions).
    AddUser { name: String, password: String },
    /// Delete a user and its permissions; its connections are closed.
    DeleteUser { name: String },
    /// Change a user's password.
    ChangePassword { name: String, password: String },
    /// Replace a user's tags (e.g. administrator, policymaker); none clears them.
    SetUserTags { name: String, tags: Vec<String> },
    /// List users and their tags.
    ListUsers,
    /// Set a user's permissions on the vhost (-p): configure, write and read
    /// regular expressions, e.g. '^feed\..*' '^feed\..*' '.*'.
    SetPermissions {
        user: String,
        #[arg(allow_hyphen_values = true)]
        configure: String,
        #[arg(allow_hyphen_values = true)]
        write: String,
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Remove a user's permissions on the vhost (-p).
    ClearPermissions { user: String },
    /// List the permissions on the vhost (-p).
    ListPermissions,
    /// List a user's permissions on every vhost.
    ListUserPermissions { user: String },
    /// Set the vhost's (-p) limits, replacing those set before, as
    /// `rabbitmqctl set_vhost_limits`: a JSON object, e.g.
    /// '{"max-connections": 256, "max-queues": 1024}' (negative: no limit).
    SetVhostLimits { definition: String },
    /// Remove every limit of the vhost (-p).
    ClearVhostLimits,
    /// Show the vhost's (-p) limits.
    ListVhostLimits,
    /// List the vhost's exchanges (HTTP API only).
    ListExchanges,
    /// List the vhost's bindings, the default exchange's included (HTTP API only).
    ListBindings,
    /// Remove every ready message from a queue (HTTP API only).
    PurgeQueue { name: String },
    /// Delete a queue (HTTP API only).
    DeleteQueue {
        name: String,
        /// Only if it has no messages.
        #[arg(long)]
        if_empty: bool,
        /// Only if it has no consumers.
        #[arg(long)]
        if_unused: bool,
    },
    /// Write every vhost's definitions (RabbitMQ's definitions.json: users,
    /// vhosts, permissions, policies, queues, exchanges, bindings) to FILE
    /// ("-": standard output, instead of the JSON answer) (HTTP API only).
    ExportDefinitions { file: String },
    /// Load definitions from FILE ("-": standard input), as RabbitMQ's
    /// import_definitions (HTTP API only).
    ImportDefinitions { file: String },
}

pub fn run(args: CtlArgs) -> ExitCode {
    let target = target(&args, |k| std::env::var(k).ok());
    let mut request = match request(&args.command) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren ctl: {}", e);
            return ExitCode::from(2);
        }
    };
    if let Some(o) = request.as_object_mut() {
        o.insert("vhost".into(), Value::String(args.vhost.clone()));
    }
    let name = request["command"].as_str().unwrap_or_default().to_string();
    let answer = match &target {
        Target::Http(url) => {
            let url = match client::HttpUrl::parse(url) {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("warren ctl: bad --http-url: {}", e);
                    return ExitCode::from(2);
                }
            };
            let tls = if url.tls {
                let options = warren_perf::tls::TlsOptions {
                    ca: args.tls_ca.clone(),
                    insecure: args.tls_insecure,
                    cert: args.tls_cert.clone(),
                    key: args.tls_key.clone(),
                };
                match warren_perf::tls::client_config(options) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("warren ctl: {}", e);
                        return ExitCode::from(2);
                    }
                }
            } else {
                None
            };
            match http::execute(url, tls, &request) {
                Ok(a) => Ok(a),
                Err(http::Failure::Command(e)) => Ok(json!({"ok": false, "error": e})),
                Err(http::Failure::Transport(e)) => Err(e),
            }
        }
        Target::Amqp(_) if HTTP_ONLY.contains(&name.as_str()) => {
            eprintln!(
                "warren ctl: {} needs the management HTTP API (--http-url)",
                name.replace('_', "-")
            );
            return ExitCode::from(2);
        }
        Target::Amqp(url) => amqp(url, request),
    };
    let mut answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("warren ctl: {}", e);
            return ExitCode::FAILURE;
        }
    };
    let ok = answer.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
    if let (true, CtlCommand::ExportDefinitions { file }) = (ok, &args.command) {
        let defs = answer
            .as_object_mut()
            .and_then(|o| o.remove("definitions"))
            .unwrap_or_default();
        let text = serde_json::to_string_pretty(&defs).unwrap_or_default() + "\n";
        if file == "-" {
            print!("{}", text);
            return ExitCode::SUCCESS;
        }
        if let Err(e) = std::fs::write(file, text) {
            eprintln!("warren ctl: cannot write {}: {}", file, e);
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Commands the control bus does not have.
const HTTP_ONLY: &[&str] = &[
    "cluster_status",
    "join_cluster",
    "forget_cluster_node",
    "grow",
    "shrink",
    "add_member",
    "delete_member",
    "list_exchanges",
    "list_bindings",
    "purge_queue",
    "delete_queue",
    "export_definitions",
    "import_definitions",
];

/// The JSON request of a command (without its vhost), as the control bus
/// takes it.
fn request(command: &CtlCommand) -> Result<Value, String> {
    Ok(match command {
        CtlCommand::SetPolicy {
            name,
            pattern,
            definition,
            apply_to,
            priority,
        } => {
            let definition: Value = serde_json::from_str(definition)
                .map_err(|e| format!("definition is not valid JSON: {}", e))?;
            json!({"command": "set_policy", "name": name, "pattern": pattern,
                   "definition": definition, "apply_to": apply_to, "priority": priority})
        }
        CtlCommand::ClearPolicy { name } => json!({"command": "clear_policy", "name": name}),
        CtlCommand::ListPolicies => json!({"command": "list_policies"}),
        CtlCommand::TraceOn => json!({"command": "trace_on"}),
        CtlCommand::TraceOff => json!({"command": "trace_off"}),
        CtlCommand::ListQueues => json!({"command": "list_queues"}),
        CtlCommand::AddVhost { name } => json!({"command": "add_vhost", "name": name}),
        CtlCommand::DeleteVhost { name } => json!({"command": "delete_vhost", "name": name}),
        CtlCommand::ListVhosts => json!({"command": "list_vhosts"}),
        CtlCommand::ClusterStatus => json!({"command": "cluster_status"}),
        CtlCommand::Join { name, addr } => {
            json!({"command": "join_cluster", "name": name, "addr": addr})
        }
        CtlCommand::ForgetNode { name } => json!({"command": "forget_cluster_node", "name": name}),
        CtlCommand::Grow {
            node,
            selection,
            vhost_pattern,
            queue_pattern,
        } => {
            // `all` and `even` are RabbitMQ's strategies; anything else is
            // taken as a queue-name pattern.
            let (selection, queue_pattern) = match selection.as_str() {
                "all" | "even" => (selection.clone(), queue_pattern.clone()),
                pattern => ("all".to_string(), pattern.to_string()),
            };
            json!({"command": "grow", "node": node, "selection": selection,
                   "vhost_pattern": vhost_pattern, "queue_pattern": queue_pattern})
        }
        CtlCommand::Shrink { node } => json!({"command": "shrink", "node": node}),
        CtlCommand::AddMember { queue, node } => {
            json!({"command": "add_member", "queue": queue, "node": node})
        }
        CtlCommand::DeleteMember { queue, node } => {
            json!({"command": "delete_member", "queue": queue, "node": node})
        }
        CtlCommand::AddUser { name, password } => {
            json!({"command": "add_user", "name": name, "password": password})
        }
        CtlCommand::DeleteUser { name } => json!({"command": "delete_user", "name": name}),
        CtlCommand::ChangePassword { name, password } => {
            json!({"command": "change_password", "name": name, "password": password})
        }
        CtlCommand::SetUserTags { name, tags } => {
            json!({"command": "set_user_tags", "name": name, "tags": tags})
        }
        CtlCommand::ListUsers => json!({"command": "list_users"}),
        CtlCommand::SetPermissions {
            user,
            configure,
            write,
            read,
        } => json!({"command": "set_permissions", "user": user, "configure": configure,
                    "write": write, "read": read}),
        CtlCommand::ClearPermissions { user } => {
            json!({"command": "clear_permissions", "user": user})
        }
        CtlCommand::ListPermissions => json!({"command": "list_permissions"}),
        CtlCommand::ListUserPermissions { user } => {
            json!({"command": "list_user_permissions", "user": user})
        }
        CtlCommand::SetVhostLimits { definition } => {
            let limits: Value = serde_json::from_str(definition)
                .map_err(|e| format!("limits are not JSON: {}", e))?;
            if !limits.is_object() {
                return Err("limits must be a JSON object".into());
            }
            json!({"command": "set_vhost_limits", "limits": limits})
        }
        CtlCommand::ClearVhostLimits => json!({"command": "clear_vhost_limits"}),
        CtlCommand::ListVhostLimits => json!({"command": "list_vhost_limits"}),
        CtlCommand::ListExchanges => json!({"command": "list_exchanges"}),
        CtlCommand::ListBindings => json!({"command": "list_bindings"}),
        CtlCommand::PurgeQueue { name } => json!({"command": "purge_queue", "name": name}),
        CtlCommand::DeleteQueue {
            name,
            if_empty,
            if_unused,
        } => json!({"command": "delete_queue", "name": name,
                    "if_empty": if_empty, "if_unused": if_unused}),
        CtlCommand::ExportDefinitions { .. } => json!({"command": "export_definitions"}),
        CtlCommand::ImportDefinitions { file } => {
            let text = if file == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| format!("cannot read standard input: {}", e))?;
                s
            } else {
                std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {}", file, e))?
            };
            let definitions: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not valid JSON: {}", file, e))?;
            json!({"command": "import_definitions", "definitions": definitions})
        }
    })
}

/// Run `request` over the control bus.
fn amqp(url: &str, request: Value) -> Result<Value, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {}", e))?;
    runtime.block_on(call(url, request))
}

async fn call(url: &str, request: Value) -> Result<Value, String> {
    let uri = url.parse().map_err(|e| format!("bad --amqp-url: {}", e))?;
    let mut conn = Connection::open(&uri).await.map_err(|e| e.to_string())?;
    conn.open_channel(1).await.map_err(|e| e.to_string())?;
    conn.rpc(
        1,
        Method::BasicConsume(BasicConsume {
            queue: ShortStr::from_static("amq.rabbitmq.reply-to"),
            no_ack: true,
            ..Default::default()
        }),
    )
    .await
    .map_err(|e| e.to_string())?;
    let props = BasicProperties {
        reply_to: Some(ShortStr::from_static("amq.rabbitmq.reply-to")),
        content_type: Some(ShortStr::from_static("application/json")),
        ..Default::default()
    }
    .encode();
    conn.send_content(
        1,
        &Method::BasicPublish(BasicPublish {
            exchange: ShortStr::from_static(warren_core::control::CONTROL_EXCHANGE),
            ..Default::default()
        }),
        &props,
        request.to_string().as_bytes(),
    );
    conn.flush().await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    let mut expected = None;
    let deadline = std::time::Duration::from_secs(10);
    tokio::time::timeout(deadline, async {
        loop {
            match conn.recv().await.map_err(|e| e.to_string())? {
                Frame::Method(1, Method::BasicDeliver(_)) => expected = None,
                Frame::Header(1, h) => {
                    expected = Some(h.body_size as usize);
                    if h.body_size == 0 {
                        return Ok::<(), String>(());
                    }
                }
                Frame::Body(1, b) => {
                    body.extend_from_slice(&b);
                    if Some(body.len()) == expected {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| "no answer from the broker (is it Warren?)".to_string())??;
    let _ = conn.close().await;
    serde_json::from_slice(&body).map_err(|e| format!("bad answer: {}", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> CtlArgs {
        let mut full = vec!["ctl"];
        full.extend_from_slice(argv);
        CtlArgs::try_parse_from(full).unwrap()
    }

    #[test]
    fn picks_the_target() {
        let none = |_: &str| None;
        let both = |k: &str| Some(format!("{}-value", k));
        let amqp_env = |k: &str| (k == "WARREN_AMQP_URL").then(|| "amqp://e".to_string());
        let empty_http = |k: &str| match k {
            "WARREN_HTTP_URL" => Some(String::new()),
            _ => Some("amqp://e".to_string()),
        };
        let default = Target::Http(DEFAULT_HTTP_URL.into());
        assert_eq!(target(&args(&["list-queues"]), none), default);
        let a = args(&["--amqp-url", "amqp://x", "list-queues"]);
        assert_eq!(target(&a, none), Target::Amqp("amqp://x".into()));
        assert_eq!(target(&a, both), Target::Amqp("amqp://x".into()));
        let h = args(&["--http-url", "http://x", "list-queues"]);
        assert_eq!(target(&h, amqp_env), Target::Http("http://x".into()));
        let plain = args(&["list-queues"]);
        assert_eq!(
            target(&plain, both),
            Target::Http("WARREN_HTTP_URL-value".into())
        );
        assert_eq!(target(&plain, amqp_env), Target::Amqp("amqp://e".into()));
        assert_eq!(target(&plain, empty_http), Target::Amqp("amqp://e".into()));
        assert!(CtlArgs::try_parse_from([
            "ctl",
            "--http-url",
            "http://x",
            "--amqp-url",
            "amqp://x",
            "list-queues"
        ])
        .is_err());
    }

    #[test]
    fn builds_requests() {
        let a = args(&["-p", "v", "delete-queue", "q", "--if-empty"]);
        assert_eq!(
            request(&a.command).unwrap(),
            json!({"command": "delete_queue", "name": "q", "if_empty": true, "if_unused": false})
        );
        let a = args(&["set-policy", "p", ".*", "{nope"]);
        assert!(request(&a.command).is_err());
        let a = args(&["import-definitions", "/nonexistent/defs.json"]);
        assert!(request(&a.command).is_err());
        let a = args(&["grow", "n4", "all"]);
        assert_eq!(
            request(&a.command).unwrap(),
            json!({"command": "grow", "node": "n4", "selection": "all",
                   "vhost_pattern": ".*", "queue_pattern": ".*"})
        );
        // Anything but all/even is a queue-name pattern.
        let a = args(&["grow", "n4", "^orders"]);
        let r = request(&a.command).unwrap();
        assert_eq!(
            (r["selection"].as_str(), r["queue_pattern"].as_str()),
            (Some("all"), Some("^orders"))
        );
        let a = args(&["-p", "v", "add-member", "q", "n2"]);
        assert_eq!(
            request(&a.command).unwrap(),
            json!({"command": "add_member", "queue": "q", "node": "n2"})
        );
    }
}
