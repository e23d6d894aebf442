//! The pure queue logic: targeted cases and property tests (no message is
//! lost or invented, prefetch is respected, replicas agree).

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use warren_quorum::{
    Command, DeadLetterReason, Effect, Message, Outcome, Overflow, PublisherSeq, QueueConfig,
    QueueState, Reply,
};

fn msg(n: u64) -> Message {
    Message {
        header: Bytes::new(),
        body: Bytes::from(n.to_be_bytes().to_vec()),
        expires_at: warren_quorum::NEVER,
    }
}

fn body_id(m: &Message) -> u64 {
    u64::from_be_bytes(m.body[..8].try_into().unwrap())
}

fn enq(n: u64) -> Command {
    Command::Enqueue {
        publisher: None,
        message: msg(n),
    }
}

fn deliveries(o: &Outcome) -> Vec<(u64, u64, u64, bool)> {
    o.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver {
                consumer,
                delivery_id,
                redelivered,
                message,
                ..
            } => Some((*consumer, *delivery_id, body_id(message), *redelivered)),
            _ => None,
        })
        .collect()
}

fn attach(consumer: u64, prefetch: u32) -> Command {
    Command::Attach {
        consumer,
        node: 1,
        prefetch,
        priority: 0,
    }
}

#[test]
fn deliver_round_robin_with_prefetch() {
    let mut q = QueueState::default();
    for i in 1..=5 {
        assert!(matches!(q.apply(enq(i)).reply, Reply::Enqueued { .. }));
    }
    let o = q.apply(attach(10, 2));
    assert_eq!(deliveries(&o), vec![(10, 1, 1, false), (10, 2, 2, false)]);
    let o = q.apply(attach(20, 2));
    assert_eq!(deliveries(&o), vec![(20, 1, 3, false), (20, 2, 4, false)]);
    // An ack frees one slot.
    let o = q.apply(Command::Settle {
        consumer: 10,
        ids: vec![1],
    });
    assert_eq!(deliveries(&o), vec![(10, 3, 5, false)]);
    assert_eq!(q.ready_count(), 0);
    assert_eq!(q.unacked_count(), 4);
}

#[test]
fn consumer_down_returns_unacked_for_redelivery() {
    let mut q = QueueState::default();
    q.apply(attach(1, 0));
    for i in 1..=3 {
        q.apply(enq(i));
    }
    assert_eq!(q.unacked_count(), 3);
    q.apply(Command::Settle {
        consumer: 1,
        ids: vec![2],
    });
    let o = q.apply(Command::ConsumerDown { consumer: 1 });
    assert!(o.effects.is_empty());
    assert_eq!(q.ready_count(), 2);
    let o = q.apply(attach(2, 0));
    assert_eq!(deliveries(&o), vec![(2, 1, 1, true), (2, 2, 3, true)]);
}

#[test]
fn node_down_returns_its_consumers_messages() {
    let mut q = QueueState::default();
    q.apply(Command::Attach {
        consumer: 1,
        node: 7,
        prefetch: 1,
        priority: 0,
    });
    q.apply(Command::Attach {
        consumer: 2,
        node: 8,
        prefetch: 1,
        priority: 0,
    });
    q.apply(enq(1));
    q.apply(enq(2));
    q.apply(enq(3));
    let o = q.apply(Command::NodeDown { node: 7 });
    // Message 1 came back and goes out first again, to consumer 2 once it
    // has credit.
    assert!(deliveries(&o).is_empty());
    let o = q.apply(Command::Settle {
        consumer: 2,
        ids: vec![1],
    });
    assert_eq!(deliveries(&o), vec![(2, 2, 1, true)]);
}

#[test]
fn delivery_limit_dead_letters() {
    let mut q = QueueState::new(QueueConfig {
        delivery_limit: Some(2),
        ..QueueConfig::default()
    });
    q.apply(attach(1, 1));
    q.apply(enq(42));
    let mut delivered = 1;
    loop {
        let o = q.apply(Command::Return {
            consumer: 1,
            ids: vec![delivered],
        });
        if let Some(Effect::DeadLetter {
            reason,
            delivery_count,
            message,
        }) = o.effects.first()
        {
            assert_eq!(*reason, DeadLetterReason::DeliveryLimit);
            assert_eq!(*delivery_count, 3);
            assert_eq!(body_id(message), 42);
            break;
        }
        let d = deliveries(&o);
        assert_eq!(d.len(), 1);
        assert!(d[0].3, "redelivered");
        delivered = d[0].1;
    }
    // Delivered limit + 1 = 3 times, as RabbitMQ does.
    assert_eq!(delivered, 3);
    assert_eq!(q.ready_count() + q.unacked_count(), 0);
}

#[test]
fn discard_dead_letters_as_rejected() {
    let mut q = QueueState::default();
    q.apply(attach(1, 0));
    q.apply(enq(1));
    let o = q.apply(Command::Discard {
        consumer: 1,
        ids: vec![1],
    });
    assert!(matches!(
        o.effects[0],
        Effect::DeadLetter {
            reason: DeadLetterReason::Rejected,
            ..
        }
    ));
}

#[test]
fn publisher_resends_are_deduplicated() {
    let mut q = QueueState::default();
    let p = |seq| Command::Enqueue {
        publisher: Some(PublisherSeq { publisher: 9, seq }),
        message: msg(seq),
    };
    assert!(matches!(q.apply(p(1)).reply, Reply::Enqueued { .. }));
    assert!(matches!(q.apply(p(2)).reply, Reply::Enqueued { .. }));
    // A leader change made the publisher resend 1 and 2.
    assert_eq!(q.apply(p(1)).reply, Reply::Duplicate);
    assert_eq!(q.apply(p(2)).reply, Reply::Duplicate);
    assert!(matches!(q.apply(p(3)).reply, Reply::Enqueued { .. }));
    assert_eq!(q.ready_count(), 3);
}

#[test]
fn max_length_drop_head_and_reject_publish() {
    let mut q = QueueState::new(QueueConfig {
        max_length: Some(2),
        ..QueueConfig::default()
    });
    q.apply(enq(1));
    q.apply(enq(2));
    let o = q.apply(enq(3));
    assert!(matches!(o.reply, Reply::Enqueued { .. }));
    match &o.effects[0] {
        Effect::DeadLetter {
            reason: DeadLetterReason::MaxLength,
            message,
            ..
        } => assert_eq!(body_id(message), 1),
        e => panic!("{e:?}"),
    }
    let mut q = QueueState::new(QueueConfig {
        max_length: Some(2),
        overflow: Overflow::RejectPublish,
        ..QueueConfig::default()
    });
    q.apply(enq(1));
    q.apply(enq(2));
    assert_eq!(q.apply(enq(3)).reply, Reply::Rejected);
    assert_eq!(q.ready_count(), 2);
}

#[test]
fn basic_get_and_purge() {
    let mut q = QueueState::default();
    assert_eq!(
        q.apply(Command::Dequeue {
            consumer: 5,
            node: 1,
            settled: false
        })
        .reply,
        Reply::Empty
    );
    for i in 1..=3 {
        q.apply(enq(i));
    }
    let o = q.apply(Command::Dequeue {
        consumer: 5,
        node: 1,
        settled: false,
    });
    assert_eq!(
        o.reply,
        Reply::Dequeued {
            delivery_id: 1,
            redelivered: false,
            message: msg(1),
            remaining: 2
        }
    );
    assert!(o.effects.is_empty());
    assert_eq!(q.apply(Command::Purge).reply, Reply::Purged { count: 2 });
    // The unacked get is still there and can be returned.
    q.apply(Command::Return {
        consumer: 5,
        ids: vec![1],
    });
    assert_eq!(q.ready_count(), 1);
}

// ---- properties ----

fn arb_cmd() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (0u64..3, 1u64..6).prop_map(|(p, s)| Command::Enqueue {
            publisher: Some(PublisherSeq { publisher: p, seq: s }),
            message: msg(0),
        }),
        3 => Just(enq(0)),
        2 => (0u64..4, 0u32..4, -1i64..2).prop_map(|(c, p, pr)| attach_prio(c, p, pr)),
        1 => (0u64..2500).prop_map(|now| Command::Tick { now }),
        1 => (0u64..4).prop_map(|c| Command::Cancel { consumer: c }),
        3 => (0u64..4, proptest::collection::vec(1u64..12, 0..4))
            .prop_map(|(c, ids)| Command::Settle { consumer: c, ids }),
        2 => (0u64..4, proptest::collection::vec(1u64..12, 0..4))
            .prop_map(|(c, ids)| Command::Return { consumer: c, ids }),
        1 => (0u64..4, proptest::collection::vec(1u64..12, 0..4))
            .prop_map(|(c, ids)| Command::Discard { consumer: c, ids }),
        1 => (0u64..4).prop_map(|c| Command::ConsumerDown { consumer: c }),
        1 => (0u64..4, any::<bool>()).prop_map(|(c, s)| Command::Dequeue { consumer: c + 10, node: 1, settled: s }),
        1 => Just(Command::Purge),
    ]
}

proptest! {
    /// Every enqueued message is, at every step, exactly one of: ready,
    /// unacked, settled, dead-lettered, purged or got without ack — none lost, none
    /// invented. Prefetch is never exceeded. A replica applying the same
    /// commands, and a copy restored from a snapshot, agree.
    #[test]
    fn conservation_prefetch_determinism(cmds in proptest::collection::vec(arb_cmd(), 1..120),
                                         limit in proptest::option::of(0u32..3),
                                         single_active in any::<bool>()) {
        let cfg = QueueConfig { delivery_limit: limit, single_active, ..QueueConfig::default() };
        let mut q = QueueState::new(cfg.clone());
        let mut replica = QueueState::new(cfg);
        let mut next = 0u64;
        let mut gone = 0u64; // settled + dead + purged + auto-acked
        let mut unacked: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut prefetch: BTreeMap<u64, u32> = BTreeMap::new();
        let mut enqueued = 0u64;
        let mut clock = 0u64;
        for cmd in cmds {
            let cmd = match cmd {
                Command::Enqueue { publisher, .. } => {
                    next += 1;
                    let mut message = msg(next);
                    // Every third message has a TTL (expiry within the ticks' range).
                    if next.is_multiple_of(3) { message.expires_at = (next * 37) % 2000; }
                    Command::Enqueue { publisher, message }
                }
                c => c,
            };
            if let Command::Attach { consumer, prefetch: p, .. } = &cmd { prefetch.insert(*consumer, *p); }
            let settles: Vec<(u64, u64)> = match &cmd {
                Command::Settle { consumer, ids } => ids.iter().map(|i| (*consumer, *i)).collect(),
                _ => Vec::new(),
            };
            let o = q.apply(cmd.clone());
            let o2 = replica.apply(cmd.clone());
            prop_assert_eq!(&o, &o2);
            if matches!(o.reply, Reply::Enqueued { .. }) { enqueued += 1; }
            if let Reply::Purged { count } = o.reply { gone += count; }
            if let (Reply::Dequeued { delivery_id, message, .. }, Command::Dequeue { consumer, .. }) = (&o.reply, &cmd) {
                if *delivery_id == 0 { gone += 1; } else {
                    prop_assert!(unacked.insert((*consumer, *delivery_id), body_id(message)).is_none());
                }
            }
            for k in settles { if unacked.remove(&k).is_some() { gone += 1; } }
            match &cmd {
                Command::Return { consumer, ids } | Command::Discard { consumer, ids } => {
                    for i in ids { unacked.remove(&(*consumer, *i)); }
                }
                Command::ConsumerDown { consumer } => unacked.retain(|(c, _), _| c != consumer),
                _ => {}
            }
            for e in &o.effects {
                match e {
                    Effect::Deliver { consumer, delivery_id: 0, .. } => { let _ = consumer; gone += 1; }
                    Effect::Deliver { consumer, delivery_id, message, .. } => {
                        prop_assert!(unacked.insert((*consumer, *delivery_id), body_id(message)).is_none());
                    }
                    Effect::DeadLetter { .. } => gone += 1,
                }
            }
            if let Command::Tick { now } = &cmd { clock = clock.max(*now); }
            // Nothing expired by the clock is handed out.
            for e in &o.effects {
                if let Effect::Deliver { message, .. } = e {
                    prop_assert!(message.expires_at > clock, "expired {} delivered at {}", message.expires_at, clock);
                }
            }
            if single_active {
                // One active consumer: one command's deliveries go to one.
                let mut to: Vec<u64> = o.effects.iter().filter_map(|e| match e {
                    Effect::Deliver { consumer, delivery_id, .. } if *delivery_id != 0 => Some(*consumer),
                    _ => None,
                }).collect();
                to.dedup();
                prop_assert!(to.len() <= 1, "deliveries to {:?}", to);
            }
            prop_assert_eq!(q.unacked_count(), unacked.len() as u64);
            prop_assert_eq!(q.ready_count() + q.unacked_count() + gone, enqueued);
            // A consumer that was just given messages holds no more than
            // its prefetch.
            for e in &o.effects {
                if let Effect::Deliver { consumer, delivery_id, .. } = e {
                    let p = prefetch.get(consumer).copied().unwrap_or(0);
                    let held = unacked.keys().filter(|(c, _)| c == consumer).count();
                    if *delivery_id != 0 && p > 0 && *consumer < 10 {
                        prop_assert!(held <= p as usize, "consumer {} holds {} > {}", consumer, held, p);
                    }
                }
            }
        }
        let snap = bincode_round_trip(&q);
        prop_assert_eq!(snap, q);
    }
}

/// The snapshot format: the state as serde and bincode see it.
fn bincode_round_trip(q: &QueueState) -> QueueState {
    bincode::deserialize(&bincode::serialize(q).unwrap()).unwrap()
}

#[test]
fn enqueue_batch_once_per_publisher_seq_and_reports_refusals() {
    let mut q = QueueState::new(QueueConfig {
        max_length: Some(2),
        overflow: Overflow::RejectPublish,
        ..QueueConfig::default()
    });
    let batch = |seq| Command::EnqueueBatch {
        publisher: PublisherSeq { publisher: 7, seq },
        messages: vec![msg(1), msg(2), msg(3)],
    };
    assert_eq!(
        q.apply(batch(1)).reply,
        Reply::EnqueuedBatch { rejected: vec![2] }
    );
    // Resent after a leader change: applied once.
    assert_eq!(q.apply(batch(1)).reply, Reply::Duplicate);
    assert_eq!(q.ready_count(), 2);
}

#[test]
fn enqueue_next_applies_a_publishers_batches_strictly_in_sequence() {
    let mut q = QueueState::default();
    let batch = |publisher, seq, n| Command::EnqueueNext {
        publisher: PublisherSeq { publisher, seq },
        messages: vec![msg(n)],
    };
    let ok = Reply::EnqueuedBatch { rejected: vec![] };
    // Batch 2 overtook batch 1 on its way to the leader: refused, nothing
    // added (a plain "seq above the last one" check would apply it and
    // then take batch 1 for a duplicate: batch 1's messages lost).
    assert_eq!(q.apply(batch(7, 2, 2)).reply, Reply::OutOfOrder);
    assert_eq!(q.ready_count(), 0);
    assert_eq!(q.apply(batch(7, 1, 1)).reply, ok);
    assert_eq!(q.apply(batch(7, 2, 2)).reply, ok);
    // Resends of applied batches are duplicates, a gap is out of order.
    assert_eq!(q.apply(batch(7, 1, 1)).reply, Reply::Duplicate);
    assert_eq!(q.apply(batch(7, 2, 2)).reply, Reply::Duplicate);
    assert_eq!(q.apply(batch(7, 4, 4)).reply, Reply::OutOfOrder);
    // Publishers are independent; every publisher starts at 1.
    assert_eq!(q.apply(batch(8, 1, 5)).reply, ok);
    assert_eq!(q.ready_count(), 3);
    // The state survives a snapshot round trip.
    let mut r = bincode_round_trip(&q);
    assert_eq!(r.apply(batch(7, 3, 3)).reply, ok);
    assert_eq!(r.apply(batch(8, 1, 5)).reply, Reply::Duplicate);
    assert_eq!(r.ready_count(), 4);
}

#[test]
fn batch_applies_in_order_with_one_reply_each() {
    let mut q = QueueState::default();
    q.apply(enq(1));
    let o = q.apply(Command::Batch(vec![
        attach(1, 0),
        Command::Settle {
            consumer: 9,
            ids: vec![1],
        },
        Command::Settle {
            consumer: 1,
            ids: vec![1],
        },
    ]));
    assert_eq!(
        o.reply,
        Reply::Batch(vec![Reply::Ok, Reply::UnknownConsumer, Reply::Ok])
    );
    // The attach delivered the ready message; the settle in the same batch
    // took it.
    assert_eq!(deliveries(&o), vec![(1, 1, 1, false)]);
    assert_eq!(q.unacked_count(), 0);
}

fn expiring(n: u64, at: u64) -> Command {
    let mut m = msg(n);
    m.expires_at = at;
    Command::Enqueue {
        publisher: None,
        message: m,
    }
}

fn dead_letters(o: &Outcome) -> Vec<(DeadLetterReason, u64)> {
    o.effects
        .iter()
        .filter_map(|e| match e {
            Effect::DeadLetter {
                reason, message, ..
            } => Some((*reason, body_id(message))),
            _ => None,
        })
        .collect()
}

#[test]
fn ttl_expires_heads_at_the_proposed_clock() {
    let mut q = QueueState::default();
    q.apply(Command::Tick { now: 1_000 });
    q.apply(expiring(1, 1_200));
    q.apply(expiring(2, 1_050));
    q.apply(enq(3));
    assert_eq!(q.next_expiry(), Some(1_200));
    // Before the head's expiry nothing goes (2 waits behind 1, as RabbitMQ).
    assert!(dead_letters(&q.apply(Command::Tick { now: 1_100 })).is_empty());
    let o = q.apply(Command::Tick { now: 1_200 });
    assert_eq!(
        dead_letters(&o),
        vec![
            (DeadLetterReason::Expired, 1),
            (DeadLetterReason::Expired, 2)
        ]
    );
    assert_eq!(q.ready_count(), 1);
    assert_eq!(q.next_expiry(), None);
    // A consumer gets what is left; a basic.get after a tick too.
    let o = q.apply(attach(7, 0));
    assert_eq!(deliveries(&o), vec![(7, 1, 3, false)]);
}

#[test]
fn ttl_expired_message_is_not_dequeued() {
    let mut q = QueueState::default();
    q.apply(expiring(1, 500));
    q.apply(enq(2));
    let o = q.apply(Command::Batch(vec![
        Command::Tick { now: 600 },
        Command::Dequeue {
            consumer: 9,
            node: 1,
            settled: true,
        },
    ]));
    assert_eq!(dead_letters(&o), vec![(DeadLetterReason::Expired, 1)]);
    match o.reply {
        Reply::Batch(rs) => match &rs[1] {
            Reply::Dequeued { message, .. } => assert_eq!(body_id(message), 2),
            r => panic!("{r:?}"),
        },
        r => panic!("{r:?}"),
    }
}

fn attach_prio(consumer: u64, prefetch: u32, priority: i64) -> Command {
    Command::Attach {
        consumer,
        node: 1,
        prefetch,
        priority,
    }
}

#[test]
fn higher_priority_consumers_first_then_lower() {
    let mut q = QueueState::default();
    q.apply(attach_prio(1, 2, 1));
    q.apply(attach_prio(2, 2, 10));
    q.apply(attach_prio(3, 2, 10));
    let mut got = Vec::new();
    for i in 1..=6 {
        got.extend(deliveries(&q.apply(enq(i))).into_iter().map(|d| d.0));
    }
    // The two priority-10 consumers share round robin until both are full.
    assert_eq!(got, vec![2, 3, 2, 3, 1, 1]);
}

#[test]
fn single_active_consumer_takes_all_next_takes_over() {
    let mut q = QueueState::new(QueueConfig {
        single_active: true,
        ..QueueConfig::default()
    });
    q.apply(attach(1, 2));
    q.apply(attach(2, 0));
    assert_eq!(q.active_consumer(), Some(1));
    let mut got = Vec::new();
    for i in 1..=4 {
        got.extend(deliveries(&q.apply(enq(i))).into_iter().map(|d| d.0));
    }
    // Consumer 1 is full (prefetch 2): 3 and 4 wait, consumer 2 gets none.
    assert_eq!(got, vec![1, 1]);
    // Cancelled: 2 takes over at once; 1 keeps its unacked until settled.
    let o = q.apply(Command::Cancel { consumer: 1 });
    assert_eq!(q.active_consumer(), Some(2));
    assert_eq!(deliveries(&o), vec![(2, 1, 3, false), (2, 2, 4, false)]);
    // 2 goes down: its messages wait for the next consumer.
    q.apply(Command::ConsumerDown { consumer: 2 });
    assert_eq!(q.active_consumer(), None);
    q.apply(attach(3, 0));
    assert_eq!(q.active_consumer(), Some(3));
    assert_eq!(q.ready_count(), 0);
}
