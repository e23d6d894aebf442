use super::*;
use std::time::Instant;
use warren_core::queue::QueueOptions;
use warren_core::ShortStr;

fn broker(name: &str) -> (Arc<Broker>, warren_core::testing::ScratchDir) {
    warren_core::testing::scratch_broker("prom", name)
}

fn declare(b: &Broker, vhost: &str, name: &str) {
    let opts = QueueOptions {
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Default::default(),
    };
    b.ensure_vhost(vhost)
        .declare_queue(Some(ShortStr::from(name)), opts, false, 1)
        .expect("declare");
}

fn lines<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .collect()
}

#[test]
fn aggregated_sums_without_labels() {
    let (b, _dir) = broker("agg");
    declare(&b, "/", "a");
    declare(&b, "/", "a");
    declare(&b, "other", "b");
    let text = render(&b, &NodeProbe::unknown("warren@h"), false, Format::Text004);
    assert_eq!(lines(&text, "rabbitmq_queues"), ["rabbitmq_queues 2"]);
    assert_eq!(
        lines(&text, "rabbitmq_queue_messages"),
        ["rabbitmq_queue_messages 0"]
    );
    assert_eq!(
        lines(&text, "rabbitmq_queues_declared_total"),
        ["rabbitmq_queues_declared_total 3"]
    );
    assert_eq!(
        lines(&text, "rabbitmq_queues_created_total"),
        ["rabbitmq_queues_created_total 2"]
    );
    assert!(text.contains(
        "# TYPE rabbitmq_queue_messages_ready gauge\n# HELP rabbitmq_queue_messages_ready Messages ready to be delivered to consumers\nrabbitmq_queue_messages_ready 0\n"
    ));
    assert!(text.contains(
        "rabbitmq_identity_info{rabbitmq_node=\"warren@h\",rabbitmq_cluster=\"warren@h\","
    ));
    assert!(!text.contains("# EOF"));
}

#[test]
fn per_object_labels_queues_and_escapes() {
    let (b, _dir) = broker("perobj");
    declare(&b, "/", "q\"1\\");
    declare(&b, "v", "q2");
    let text = render(&b, &NodeProbe::unknown("warren@h"), true, Format::Text004);
    let mut ready = lines(&text, "rabbitmq_queue_messages_ready");
    ready.sort();
    assert_eq!(
        ready,
        [
            "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"q\\\"1\\\\\"} 0",
            "rabbitmq_queue_messages_ready{vhost=\"v\",queue=\"q2\"} 0",
        ]
    );
}

#[test]
fn openmetrics_names_counters_without_total_and_ends_with_eof() {
    let (b, _dir) = broker("om");
    let text = render(
        &b,
        &NodeProbe::unknown("warren@h"),
        false,
        Format::OpenMetrics,
    );
    assert!(text.contains("# TYPE rabbitmq_connections_opened counter\n"));
    assert!(text.contains("\nrabbitmq_connections_opened_total 0\n"));
    assert!(text.contains("# TYPE rabbitmq_build_info unknown\n"));
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(
        Format::from_accept("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        Format::OpenMetrics
    );
    assert_eq!(Format::from_accept("*/*"), Format::Text004);
}

/// `cargo test --release -p warren-http scrape_10k -- --ignored --nocapture`
#[test]
#[ignore]
fn scrape_10k_queues() {
    let (b, _dir) = broker("10k");
    for i in 0..10_000 {
        declare(&b, "/", &format!("queue-{i}"));
    }
    let probe = NodeProbe::unknown("warren@h");
    for per_object in [false, true] {
        let mut best = f64::MAX;
        let mut size = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let text = render(&b, &probe, per_object, Format::Text004);
            best = best.min(t.elapsed().as_secs_f64() * 1000.0);
            size = text.len();
        }
        println!("10,000 queues, per_object={per_object}: {best:.1} ms, {size} bytes");
        assert!(best < 200.0);
    }
}
