//! `warren ctl` over its two transports: every command is run with
//! `--amqp-url` (the control bus) and with `--http-url` (the management HTTP
//! API) against one broker, and the two must print the same JSON and exit
//! with the same code. Changes are made once each way, on twin objects (`-a`
//! over AMQP, `-h` over HTTP), and looked at both ways. Needs a private
//! broker (skipped when `WARREN_TEST_URL` is set).

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use warren_tests::{
    bind_queue, broker_binary,
    lapin::{
        options::{BasicConsumeOptions, BasicGetOptions, QueueDeclareOptions},
        types::FieldTable,
    },
    publish, timeout_secs, unique, Broker,
};

struct Ctl {
    bin: PathBuf,
    host: String,
    amqp_port: u16,
    http_port: u16,
}

/// What one `warren ctl` run gave.
#[derive(Debug, PartialEq)]
struct Out {
    code: i32,
    stdout: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

impl Ctl {
    fn amqp_url(&self, user: &str, password: &str) -> String {
        format!(
            "amqp://{user}:{password}@{}:{}/%2F",
            self.host, self.amqp_port
        )
    }

    fn http_url(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}:{}", self.host, self.http_port)
    }

    fn run(&self, flags: &[&str], env: &[(&str, &str)], args: &[&str]) -> Out {
        let out = Command::new(&self.bin)
            .arg("ctl")
            .args(flags)
            .args(args)
            .env_remove("WARREN_HTTP_URL")
            .env_remove("WARREN_AMQP_URL")
            .envs(env.iter().copied())
            .output()
            .expect("run warren ctl");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }

    fn amqp(&self, args: &[&str]) -> Out {
        self.run(&["--amqp-url", &self.amqp_url("guest", "guest")], &[], args)
    }

    fn http(&self, args: &[&str]) -> Out {
        self.run(&["--http-url", &self.http_url("guest", "guest")], &[], args)
    }

    /// `args` both ways: same output, same exit code; the answer.
    fn both(&self, args: &[&str]) -> Value {
        let (a, h) = (self.amqp(args), self.http(args));
        assert_eq!(a, h, "warren ctl {args:?}: AMQP vs HTTP");
        a.json()
    }

    /// A change made over AMQP with `amqp_args` and over HTTP with
    /// `http_args` (its twin): same output, same exit code.
    fn pair(&self, amqp_args: &[&str], http_args: &[&str]) -> Value {
        let (a, h) = (self.amqp(amqp_args), self.http(http_args));
        assert_eq!(
            a, h,
            "warren ctl {amqp_args:?} (AMQP) vs {http_args:?} (HTTP)"
        );
        a.json()
    }

    /// `GET path` on the API as guest: the JSON answer.
    fn api_get(&self, path: &str) -> Value {
        let mut s = TcpStream::connect((self.host.as_str(), self.http_port)).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read");
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {raw}"))
    }
}

fn ok() -> Value {
    json!({"ok": true})
}

fn is_error(v: &Value) -> bool {
    v["ok"] == json!(false) && v["error"].as_str().is_some_and(|e| !e.is_empty())
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|x| {
            x.get("name")
                .unwrap_or(x)
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_the_same_over_amqp_and_http() {
    if Broker::external_url().is_some() {
        eprintln!("skipped: needs a private broker (WARREN_TEST_URL is set)");
        return;
    }
    let (broker, http_port) = Broker::spawn_with_http_api();
    let ctl = Ctl {
        bin: broker_binary(),
        host: broker.host().to_string(),
        amqp_port: broker.port(),
        http_port,
    };
    timeout_secs(240, scenario(&ctl, &broker)).await;
}

async fn scenario(ctl: &Ctl, broker: &Broker) {
    let (va, vh) = (unique("va"), unique("vh"));
    let (ua, uh) = (unique("ua"), unique("uh"));
    let missing = unique("missing");

    // vhosts
    assert_eq!(names(&ctl.both(&["list-vhosts"])["vhosts"]), vec!["/"]);
    assert_eq!(ctl.pair(&["add-vhost", &va], &["add-vhost", &vh]), ok());
    assert_eq!(
        ctl.both(&["add-vhost", &va]),
        ok(),
        "adding an existing vhost"
    );
    assert!(is_error(&ctl.both(&["add-vhost", ""])));
    let vhosts = names(&ctl.both(&["list-vhosts"])["vhosts"]);
    assert!(vhosts.contains(&va) && vhosts.contains(&vh), "{vhosts:?}");

    // users
    assert_eq!(
        ctl.pair(&["add-user", &ua, "pw1"], &["add-user", &uh, "pw1"]),
        ok()
    );
    assert!(is_error(&ctl.both(&["add-user", &ua, "pw1"])), "exists");
    assert!(is_error(&ctl.both(&["add-user", "", "pw1"])));
    let tags = ["set-user-tags", "policymaker", "management"];
    assert_eq!(
        ctl.pair(
            &[tags[0], &ua, tags[1], tags[2]],
            &[tags[0], &uh, tags[1], tags[2]]
        ),
        ok()
    );
    assert_eq!(
        ctl.pair(
            &["change-password", &ua, "pw2"],
            &["change-password", &uh, "pw2"]
        ),
        ok()
    );
    // Tags change, the password stays pw2.
    let tags = ["set-user-tags", "policymaker", "monitoring"];
    assert_eq!(
        ctl.pair(
            &[tags[0], &ua, tags[1], tags[2]],
            &[tags[0], &uh, tags[1], tags[2]]
        ),
        ok()
    );
    let users = ctl.both(&["list-users"]);
    for u in [&ua, &uh] {
        let entry = users["users"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == json!(u)))
            .unwrap_or_else(|| panic!("{u} not listed: {users}"));
        assert_eq!(entry["tags"], json!(["policymaker", "monitoring"]));
    }
    assert!(is_error(&ctl.both(&["set-user-tags", &missing, "x"])));
    assert!(is_error(&ctl.both(&["change-password", &missing, "x"])));

    // permissions
    let perms = |u: &str| ["set-permissions", "-p", &va, u, "^a", "^b", ".*"].map(String::from);
    let (pa, ph) = (perms(&ua), perms(&uh));
    let (pa, ph): (Vec<&str>, Vec<&str>) = (
        pa.iter().map(String::as_str).collect(),
        ph.iter().map(String::as_str).collect(),
    );
    assert_eq!(ctl.pair(&pa, &ph), ok());
    for u in [&ua, &uh] {
        let full = ["set-permissions", "--", u, ".*", ".*", ".*"];
        assert_eq!(ctl.both(&full), ok());
    }
    let listed = ctl.both(&["list-permissions", "-p", &va]);
    assert_eq!(
        listed["permissions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(
        listed["permissions"][0],
        json!({"user": ua, "vhost": va, "configure": "^a", "write": "^b", "read": ".*"})
    );
    ctl.both(&["list-permissions", "-p", &vh]);
    ctl.both(&["list-permissions"]);
    for u in [&ua, &uh] {
        let mine = ctl.both(&["list-user-permissions", u]);
        assert_eq!(mine["permissions"].as_array().map(Vec::len), Some(2));
    }
    assert!(is_error(&ctl.both(&["list-user-permissions", &missing])));
    assert!(is_error(&ctl.both(&["list-permissions", "-p", &missing])));
    let bad = ["set-permissions", "-p", &va, &ua, "(", ".*", ".*"];
    assert!(is_error(&ctl.both(&bad)), "invalid regex");
    let bad = ["set-permissions", "-p", &va, &missing, ".*", ".*", ".*"];
    assert!(is_error(&ctl.both(&bad)), "no such user");
    let bad = ["set-permissions", "-p", &missing, &ua, ".*", ".*", ".*"];
    assert!(is_error(&ctl.both(&bad)), "no such vhost");

    // The new passwords work both ways; the old ones do not.
    for u in [&ua, &uh] {
        for flags in [
            ["--amqp-url".to_string(), ctl.amqp_url(u, "pw2")],
            ["--http-url".to_string(), ctl.http_url(u, "pw2")],
        ] {
            let flags = [flags[0].as_str(), flags[1].as_str()];
            let out = ctl.run(&flags, &[], &["list-policies"]);
            assert_eq!(out.code, 0, "{u} with pw2 {flags:?}: {out:?}");
        }
        let old = ctl.run(
            &["--amqp-url", &ctl.amqp_url(u, "pw1")],
            &[],
            &["list-policies"],
        );
        let old_http = ctl.run(
            &["--http-url", &ctl.http_url(u, "pw1")],
            &[],
            &["list-policies"],
        );
        assert_eq!((old.code, old.stdout.as_str()), (1, ""));
        assert_eq!(old, old_http, "a refused login: stderr only, exit 1");
    }

    assert_eq!(
        ctl.pair(
            &["clear-permissions", "-p", &va, &ua],
            &["clear-permissions", "-p", &va, &uh]
        ),
        ok()
    );
    assert_eq!(
        ctl.both(&["clear-permissions", "-p", &va, &ua]),
        ok(),
        "nothing to clear"
    );
    assert!(is_error(&ctl.both(&[
        "clear-permissions",
        "-p",
        &va,
        &missing
    ])));
    assert!(is_error(&ctl.both(&[
        "clear-permissions",
        "-p",
        &missing,
        &ua
    ])));
    assert_eq!(
        ctl.both(&["list-permissions", "-p", &va])["permissions"],
        json!([])
    );

    // policies
    let def = r#"{"message-ttl": 60000, "dead-letter-exchange": "dlx"}"#;
    let policy = |n: &'static str| {
        [
            "set-policy",
            n,
            "^jobs\\.",
            def,
            "--apply-to",
            "queues",
            "--priority",
            "3",
        ]
    };
    assert_eq!(ctl.pair(&policy("pa"), &policy("ph")), ok());
    assert_eq!(ctl.both(&["set-policy", "all", ".*", "{}"]), ok());
    let listed = ctl.both(&["list-policies"]);
    assert_eq!(names(&listed["policies"]), vec!["all", "pa", "ph"]);
    assert_eq!(
        listed["policies"][1],
        json!({"vhost": "/", "name": "pa", "pattern": "^jobs\\.", "apply_to": "queues",
               "priority": 3, "definition": {"message-ttl": 60000, "dead-letter-exchange": "dlx"}})
    );
    assert!(is_error(&ctl.both(&["set-policy", "bad", "(", "{}"])));
    assert!(is_error(&ctl.both(&[
        "set-policy",
        "bad",
        ".*",
        r#"{"message-ttl": "soon"}"#
    ])));
    assert!(is_error(&ctl.both(&["set-policy", "bad", ".*", "[1]"])));
    assert!(is_error(&ctl.both(&[
        "set-policy",
        "-p",
        &missing,
        "x",
        ".*",
        "{}"
    ])));
    assert_eq!(
        ctl.pair(&["clear-policy", "pa"], &["clear-policy", "ph"]),
        ok()
    );
    assert!(is_error(&ctl.both(&["clear-policy", "pa"])));
    assert!(is_error(&ctl.both(&["clear-policy", "-p", &missing, "pa"])));
    assert!(is_error(&ctl.both(&["list-policies", "-p", &missing])));
    assert_eq!(ctl.http(&["clear-policy", "all"]).json(), ok());
    assert_eq!(ctl.both(&["list-policies"])["policies"], json!([]));

    // vhost limits: set on twin vhosts, replaced, listed both ways, cleared
    let limits = r#"{"max-connections": 5, "max-queues": 10}"#;
    assert_eq!(
        ctl.pair(
            &["set-vhost-limits", "-p", &va, limits],
            &["set-vhost-limits", "-p", &vh, limits]
        ),
        ok()
    );
    let fewer = r#"{"max-queues": 3}"#;
    assert_eq!(
        ctl.pair(
            &["set-vhost-limits", "-p", &va, fewer],
            &["set-vhost-limits", "-p", &vh, fewer]
        ),
        ok()
    );
    for v in [&va, &vh] {
        assert_eq!(
            ctl.both(&["list-vhost-limits", "-p", v])["limits"],
            json!({"max-queues": 3})
        );
    }
    assert_eq!(
        ctl.api_get(&format!("/api/vhost-limits/{va}")),
        json!([{"vhost": va, "value": {"max-queues": 3}}])
    );
    assert!(is_error(&ctl.both(&[
        "set-vhost-limits",
        "-p",
        &va,
        r#"{"max-foo": 1}"#
    ])));
    assert!(is_error(&ctl.both(&["list-vhost-limits", "-p", &missing])));
    assert_eq!(
        ctl.pair(
            &["clear-vhost-limits", "-p", &va],
            &["clear-vhost-limits", "-p", &vh]
        ),
        ok()
    );
    assert_eq!(
        ctl.both(&["list-vhost-limits", "-p", &vh])["limits"],
        json!({})
    );

    // tracing, switched one way and seen the other
    let tracing = |ctl: &Ctl| ctl.api_get(&format!("/api/vhosts/{va}"))["tracing"].clone();
    assert_eq!(tracing(ctl), json!(false));
    assert_eq!(ctl.amqp(&["-p", &va, "trace-on"]).json(), ok());
    assert_eq!(tracing(ctl), json!(true));
    assert_eq!(ctl.http(&["-p", &va, "trace-off"]).json(), ok());
    assert_eq!(tracing(ctl), json!(false));
    assert_eq!(ctl.http(&["-p", &va, "trace-on"]).json(), ok());
    assert_eq!(tracing(ctl), json!(true));
    assert_eq!(ctl.amqp(&["-p", &va, "trace-off"]).json(), ok());
    assert_eq!(tracing(ctl), json!(false));
    assert!(is_error(&ctl.both(&["-p", &missing, "trace-on"])));
    assert!(is_error(&ctl.both(&["-p", &missing, "trace-off"])));
    let vhosts = names(&ctl.both(&["list-vhosts"])["vhosts"]);
    assert!(
        !vhosts.contains(&missing),
        "trace-on must not create a vhost"
    );

    // queues: ready counts, consumers, durability
    let (q1, q2, q3) = (unique("q1"), unique("q2"), unique("q3"));
    let (conn, ch) = broker.confirm_channel().await;
    for (q, durable) in [(&q1, true), (&q2, false), (&q3, false)] {
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare");
    }
    for _ in 0..2 {
        publish(&ch, "", &q1, b"m").await;
    }
    for _ in 0..3 {
        publish(&ch, "", &q3, b"m").await;
    }
    let consumer_ch = conn.create_channel().await.expect("channel");
    // Kept until the end: lapin cancels a dropped consumer.
    let consumer = consumer_ch
        .basic_consume(
            q2.as_str().into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    // One of q3's messages is unacked: not counted in "messages".
    let got = ch
        .basic_get(q3.as_str().into(), BasicGetOptions::default())
        .await
        .expect("get");
    assert!(got.is_some());
    let listed = ctl.both(&["list-queues"]);
    assert_eq!(
        listed["queues"],
        json!([
            {"name": q1, "messages": 2, "consumers": 0, "durable": true, "type": "classic"},
            {"name": q2, "messages": 0, "consumers": 1, "durable": false, "type": "classic"},
            {"name": q3, "messages": 2, "consumers": 0, "durable": false, "type": "classic"},
        ])
    );
    assert_eq!(ctl.both(&["-p", &va, "list-queues"])["queues"], json!([]));
    assert!(is_error(&ctl.both(&["-p", &missing, "list-queues"])));

    // Commands only the HTTP API has.
    for args in [
        vec!["list-exchanges"],
        vec!["list-bindings"],
        vec!["purge-queue", &q1],
        vec!["delete-queue", &q1],
        vec!["export-definitions", "/dev/null"],
        vec!["import-definitions", "/dev/null"],
    ] {
        let out = ctl.amqp(&args);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (2, ""),
            "{args:?} over AMQP"
        );
    }
    let exchanges = ctl.http(&["list-exchanges"]).json();
    assert_eq!(exchanges["ok"], json!(true));
    assert!(exchanges["exchanges"].as_array().expect("list").contains(
        &json!({"name": "amq.topic", "type": "topic", "durable": true,
                          "auto_delete": false, "internal": false, "arguments": {}})
    ));
    bind_queue(&ch, &q1, "amq.topic", "k.#").await;
    let bindings = ctl.http(&["list-bindings"]).json();
    assert!(bindings["bindings"].as_array().expect("list").contains(
        &json!({"source": "amq.topic", "destination": q1, "destination_type": "queue",
                          "routing_key": "k.#", "arguments": {}})
    ));
    assert_eq!(ctl.http(&["purge-queue", &q1]).json(), ok());
    assert!(is_error(&ctl.http(&["purge-queue", &missing]).json()));
    let out = ctl.http(&["delete-queue", &q3, "--if-empty"]);
    assert!(is_error(&out.json()), "q3 is not empty");
    assert_eq!(ctl.http(&["delete-queue", &q3]).json(), ok());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("defs.json");
    let file = file.to_str().expect("utf-8 path");
    assert_eq!(ctl.http(&["export-definitions", file]).json(), ok());
    let defs: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("read export")).expect("JSON");
    assert!(names(&defs["vhosts"]).contains(&va));
    assert!(
        names(&defs["queues"]).contains(&q1),
        "durable queue exported"
    );
    assert_eq!(ctl.http(&["delete-queue", &q1]).json(), ok());
    assert!(is_error(&ctl.http(&["delete-queue", &q1]).json()));
    assert_eq!(ctl.http(&["import-definitions", file]).json(), ok());
    let listed = ctl.both(&["list-queues"]);
    assert_eq!(
        listed["queues"],
        json!([
            {"name": q1, "messages": 0, "consumers": 0, "durable": true, "type": "classic"},
            {"name": q2, "messages": 0, "consumers": 1, "durable": false, "type": "classic"},
        ]),
        "q1 is back from the definitions, empty"
    );
    drop(consumer);
    drop(consumer_ch);
    conn.close(0, "bye".into()).await.ok();

    // Which transport: flags first, then WARREN_HTTP_URL, then WARREN_AMQP_URL.
    // list-bindings tells them apart (exit 2 over AMQP).
    let http_env = ("WARREN_HTTP_URL", ctl.http_url("guest", "guest"));
    let amqp_env = ("WARREN_AMQP_URL", ctl.amqp_url("guest", "guest"));
    let http_env = (http_env.0, http_env.1.as_str());
    let amqp_env = (amqp_env.0, amqp_env.1.as_str());
    let code = |flags: &[&str], env: &[(&str, &str)]| ctl.run(flags, env, &["list-bindings"]).code;
    assert_eq!(code(&[], &[http_env]), 0);
    assert_eq!(code(&[], &[amqp_env]), 2);
    assert_eq!(code(&[], &[http_env, amqp_env]), 0);
    let amqp_flag = ctl.amqp_url("guest", "guest");
    assert_eq!(code(&["--amqp-url", &amqp_flag], &[http_env]), 2);
    let http_flag = ctl.http_url("guest", "guest");
    assert_eq!(code(&["--http-url", &http_flag], &[amqp_env]), 0);

    // deleting
    assert_eq!(ctl.pair(&["delete-user", &ua], &["delete-user", &uh]), ok());
    assert!(is_error(&ctl.both(&["delete-user", &ua])));
    assert_eq!(
        ctl.pair(&["delete-vhost", &va], &["delete-vhost", &vh]),
        ok()
    );
    assert!(is_error(&ctl.both(&["delete-vhost", &va])));
    assert_eq!(names(&ctl.both(&["list-vhosts"])["vhosts"]), vec!["/"]);
    ctl.both(&["list-users"]);
}
