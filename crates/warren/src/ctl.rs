//! `warren ctl`: management commands against a running broker, over AMQP.
//!
//! Each command is a JSON request published to the `amq.warren.control`
//! pseudo-exchange with a direct reply-to address; the broker answers with JSON.
//! Authentication is the AMQP login of `--amqp-url`, so no extra port is
//! involved: user, vhost and permission commands need the `administrator` tag,
//! the others `administrator` or `policymaker`. Command names mirror
//! `rabbitmqctl` (`add_user` → `add-user`, `-p VHOST` as there).

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;
use warren_amqp::codec::{BasicConsume, BasicPublish, Frame, Method};
use warren_core::{BasicProperties, ShortStr};
use warren_perf::client::Connection;

#[derive(Parser)]
pub struct CtlArgs {
    /// Broker to manage.
    #[arg(
        long,
        env = "WARREN_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2F"
    )]
    amqp_url: String,
    /// Virtual host the command applies to (`-p` as in rabbitmqctl).
    #[arg(long, short = 'p', global = true, default_value = "/")]
    vhost: String,
    #[command(subcommand)]
    command: CtlCommand,
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
}

pub fn run(args: CtlArgs) -> ExitCode {
    let request = match &args.command {
        CtlCommand::SetPolicy {
            name,
            pattern,
            definition,
            apply_to,
            priority,
        } => {
            let definition: Value = match serde_json::from_str(definition) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("definition is not valid JSON: {}", e);
                    return ExitCode::from(2);
                }
            };
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
    };
    let mut request = request;
    if let Some(o) = request.as_object_mut() {
        o.insert("vhost".into(), Value::String(args.vhost.clone()));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start runtime: {}", e);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(call(&args.amqp_url, request)) {
        Ok(answer) => {
            let ok = answer.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
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
        Err(e) => {
            eprintln!("warren ctl: {}", e);
            ExitCode::FAILURE
        }
    }
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
