//! The quorum queue's deterministic logic: applying a command to the state
//! gives the same new state and the same outcome on every member. No
//! clocks, no randomness, no hash-map iteration order, no I/O — the Raft
//! plumbing is in `machine.rs`.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::command::{
    Command, ConsumerId, DeadLetterReason, Effect, Message, NodeId, Outcome, Overflow, QueueConfig,
    Reply,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Msg {
    id: u64,
    /// Times the message came back (returned, or its consumer went down).
    delivery_count: u32,
    message: Message,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Consumer {
    node: NodeId,
    prefetch: u32,
    /// `x-priority`.
    priority: i64,
    /// Takes pushed deliveries (false once cancelled, or for basic.get).
    active: bool,
    next_delivery: u64,
    /// delivery id -> message.
    unacked: BTreeMap<u64, Msg>,
}

impl Consumer {
    fn has_credit(&self) -> bool {
        self.active && (self.prefetch == 0 || self.unacked.len() < self.prefetch as usize)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    config: QueueConfig,
    next_msg_id: u64,
    /// Returned messages go out before the rest, oldest id first.
    returns: VecDeque<Msg>,
    ready: VecDeque<Msg>,
    ready_bytes: u64,
    consumers: BTreeMap<ConsumerId, Consumer>,
    /// Round-robin order of the consumers that take deliveries.
    service: VecDeque<ConsumerId>,
    /// Last applied sequence number per publisher.
    publishers: BTreeMap<u64, u64>,
    /// The latest clock a command brought (`Tick`), ms since the epoch:
    /// what expiry is judged by (never a member's own clock).
    clock: u64,
}

impl QueueState {
    pub fn new(config: QueueConfig) -> QueueState {
        QueueState {
            config,
            ..QueueState::default()
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Messages waiting for a consumer.
    pub fn ready_count(&self) -> u64 {
        (self.returns.len() + self.ready.len()) as u64
    }

    pub fn ready_bytes(&self) -> u64 {
        self.ready_bytes
    }

    /// Messages delivered and not yet settled.
    pub fn unacked_count(&self) -> u64 {
        self.consumers
            .values()
            .map(|c| c.unacked.len() as u64)
            .sum()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.values().filter(|c| c.active).count()
    }

    /// The deliveries `consumer` holds, oldest first: what a new leader
    /// re-sends (marked redelivered) when it cannot tell whether the old
    /// leader's deliveries reached the consumer.
    pub fn checked_out(&self, consumer: ConsumerId) -> Vec<Effect> {
        let Some(c) = self.consumers.get(&consumer) else {
            return Vec::new();
        };
        c.unacked
            .iter()
            .map(|(id, m)| Effect::Deliver {
                consumer,
                node: c.node,
                delivery_id: *id,
                redelivered: true,
                delivery_count: m.delivery_count,
                message: m.message.clone(),
            })
            .collect()
    }

    /// When the next message at a head of the queue expires (the leader
    /// proposes a `Tick` then), if one has a TTL.
    pub fn next_expiry(&self) -> Option<u64> {
        [self.returns.front(), self.ready.front()]
            .into_iter()
            .flatten()
            .map(|m| m.message.expires_at)
            .filter(|e| *e != crate::command::NEVER)
            .min()
    }

    /// With `x-single-active-consumer`: the consumer that gets the
    /// deliveries (the first attached of those still consuming).
    pub fn active_consumer(&self) -> Option<ConsumerId> {
        if !self.config.single_active {
            return None;
        }
        self.service.front().copied()
    }

    /// Consumers and the node each is on.
    pub fn consumers(&self) -> Vec<(ConsumerId, NodeId)> {
        self.consumers.iter().map(|(id, c)| (*id, c.node)).collect()
    }

    /// The messages of one batch, in order; the reply names the ones a
    /// full queue refused.
    fn enqueue_all(&mut self, messages: Vec<Message>, effects: &mut Vec<Effect>) -> Reply {
        let mut rejected = Vec::new();
        for (i, m) in messages.into_iter().enumerate() {
            if self.enqueue(m, effects) == Reply::Rejected {
                rejected.push(i as u32);
            }
        }
        Reply::EnqueuedBatch { rejected }
    }

    pub fn apply(&mut self, cmd: Command) -> Outcome {
        let mut effects = Vec::new();
        let reply = match cmd {
            Command::Enqueue { publisher, message } => {
                if let Some(p) = publisher {
                    if self
                        .publishers
                        .get(&p.publisher)
                        .is_some_and(|&l| p.seq <= l)
                    {
                        return Outcome::reply(Reply::Duplicate);
                    }
                    self.publishers.insert(p.publisher, p.seq);
                }
                self.enqueue(message, &mut effects)
            }
            Command::EnqueueNext {
                publisher: p,
                messages,
            } => {
                let last = self.publishers.get(&p.publisher).copied().unwrap_or(0);
                if p.seq <= last {
                    return Outcome::reply(Reply::Duplicate);
                }
                if p.seq != last + 1 {
                    return Outcome::reply(Reply::OutOfOrder);
                }
                self.publishers.insert(p.publisher, p.seq);
                self.enqueue_all(messages, &mut effects)
            }
            Command::EnqueueBatch {
                publisher,
                messages,
            } => {
                let p = publisher;
                if self
                    .publishers
                    .get(&p.publisher)
                    .is_some_and(|&l| p.seq <= l)
                {
                    return Outcome::reply(Reply::Duplicate);
                }
                self.publishers.insert(p.publisher, p.seq);
                self.enqueue_all(messages, &mut effects)
            }
            Command::Attach {
                consumer,
                node,
                prefetch,
                priority,
            } => {
                let c = self.consumers.entry(consumer).or_insert(Consumer {
                    node,
                    prefetch,
                    priority,
                    active: true,
                    next_delivery: 1,
                    unacked: BTreeMap::new(),
                });
                c.node = node;
                c.prefetch = prefetch;
                c.priority = priority;
                c.active = true;
                if !self.service.contains(&consumer) {
                    self.service.push_back(consumer);
                }
                Reply::Ok
            }
            Command::Cancel { consumer } => match self.consumers.get_mut(&consumer) {
                Some(c) => {
                    c.active = false;
                    self.service.retain(|id| *id != consumer);
                    if c.unacked.is_empty() {
                        self.consumers.remove(&consumer);
                    }
                    Reply::Ok
                }
                None => Reply::UnknownConsumer,
            },
            Command::Settle { consumer, ids } => match self.take(consumer, &ids) {
                Some(_) => Reply::Ok,
                None => Reply::UnknownConsumer,
            },
            Command::Return { consumer, ids } => match self.take(consumer, &ids) {
                Some(msgs) => {
                    self.requeue(msgs, &mut effects);
                    Reply::Ok
                }
                None => Reply::UnknownConsumer,
            },
            Command::Discard { consumer, ids } => match self.take(consumer, &ids) {
                Some(msgs) => {
                    for m in msgs {
                        effects.push(dead(DeadLetterReason::Rejected, m));
                    }
                    Reply::Ok
                }
                None => Reply::UnknownConsumer,
            },
            Command::ConsumerDown { consumer } => {
                if self.consumer_down(consumer, &mut effects) {
                    Reply::Ok
                } else {
                    Reply::UnknownConsumer
                }
            }
            Command::NodeDown { node } => {
                let down: Vec<ConsumerId> = self
                    .consumers
                    .iter()
                    .filter(|(_, c)| c.node == node)
                    .map(|(id, _)| *id)
                    .collect();
                for id in down {
                    self.consumer_down(id, &mut effects);
                }
                Reply::Ok
            }
            Command::Dequeue {
                consumer,
                node,
                settled,
            } => match self.expire_then_pop(&mut effects) {
                None => Reply::Empty,
                Some(m) => {
                    // The proposer gets the message in its reply (basic.get
                    // waits for it), not as an effect only a leader sends.
                    let redelivered = m.delivery_count > 0;
                    let message = m.message.clone();
                    let delivery_id = if settled {
                        0
                    } else {
                        let c = self.consumers.entry(consumer).or_insert(Consumer {
                            node,
                            prefetch: 0,
                            priority: 0,
                            active: false,
                            next_delivery: 1,
                            unacked: BTreeMap::new(),
                        });
                        let id = c.next_delivery;
                        c.next_delivery += 1;
                        c.unacked.insert(id, m);
                        id
                    };
                    Reply::Dequeued {
                        delivery_id,
                        redelivered,
                        message,
                        remaining: self.ready_count(),
                    }
                }
            },
            Command::Batch(cmds) => {
                let mut replies = Vec::with_capacity(cmds.len());
                for c in cmds {
                    let o = self.apply(c);
                    effects.extend(o.effects);
                    replies.push(o.reply);
                }
                Reply::Batch(replies)
            }
            Command::Purge => {
                let count = self.ready_count();
                self.returns.clear();
                self.ready.clear();
                self.ready_bytes = 0;
                Reply::Purged { count }
            }
            Command::ForgetPublisher { publisher } => {
                self.publishers.remove(&publisher);
                Reply::Ok
            }
            Command::SetConfig(config) => {
                self.config = config;
                self.enforce_limits(&mut effects);
                Reply::Ok
            }
            Command::Tick { now } => {
                self.clock = self.clock.max(now);
                Reply::Ok
            }
        };
        self.checkout(&mut effects);
        Outcome { reply, effects }
    }

    fn enqueue(&mut self, message: Message, effects: &mut Vec<Effect>) -> Reply {
        let size = message.size();
        if self.config.overflow == Overflow::RejectPublish && self.over_limit(1, size) {
            return Reply::Rejected;
        }
        self.next_msg_id += 1;
        let id = self.next_msg_id;
        self.ready_bytes += size;
        self.ready.push_back(Msg {
            id,
            delivery_count: 0,
            message,
        });
        self.enforce_limits(effects);
        Reply::Enqueued { msg_id: id }
    }

    /// Dead-letters the messages at the heads whose expiry the clock
    /// reached (reason `expired`). Only heads, as RabbitMQ: a message
    /// behind a longer-lived one waits for it.
    fn expire(&mut self, effects: &mut Vec<Effect>) {
        for returns in [true, false] {
            loop {
                let q = if returns {
                    &mut self.returns
                } else {
                    &mut self.ready
                };
                match q.front() {
                    Some(m) if m.message.expires_at <= self.clock => {}
                    _ => break,
                }
                if let Some(m) = q.pop_front() {
                    self.ready_bytes -= m.message.size();
                    effects.push(dead(DeadLetterReason::Expired, m));
                }
            }
        }
    }

    /// basic.get: what expired by the clock goes first.
    fn expire_then_pop(&mut self, effects: &mut Vec<Effect>) -> Option<Msg> {
        self.expire(effects);
        self.pop_next()
    }

    /// Would `extra` more messages of `bytes` exceed a limit?
    fn over_limit(&self, extra: u64, bytes: u64) -> bool {
        self.config
            .max_length
            .is_some_and(|m| self.ready_count() + extra > m)
            || self
                .config
                .max_length_bytes
                .is_some_and(|m| self.ready_bytes + bytes > m)
    }

    /// drop-head: dead-letter the oldest ready messages while over a limit.
    fn enforce_limits(&mut self, effects: &mut Vec<Effect>) {
        if self.config.overflow != Overflow::DropHead {
            return;
        }
        while self.over_limit(0, 0) {
            match self.pop_next() {
                Some(m) => effects.push(dead(DeadLetterReason::MaxLength, m)),
                None => break,
            }
        }
    }

    fn pop_next(&mut self) -> Option<Msg> {
        let m = self
            .returns
            .pop_front()
            .or_else(|| self.ready.pop_front())?;
        self.ready_bytes -= m.message.size();
        Some(m)
    }

    /// Removes the given deliveries from the consumer (unknown ids are
    /// ignored: a settle may be resent after a leader change).
    fn take(&mut self, consumer: ConsumerId, ids: &[u64]) -> Option<Vec<Msg>> {
        let c = self.consumers.get_mut(&consumer)?;
        let msgs = ids.iter().filter_map(|id| c.unacked.remove(id)).collect();
        if !c.active && c.unacked.is_empty() {
            self.consumers.remove(&consumer);
        }
        Some(msgs)
    }

    fn consumer_down(&mut self, consumer: ConsumerId, effects: &mut Vec<Effect>) -> bool {
        let Some(c) = self.consumers.remove(&consumer) else {
            return false;
        };
        self.service.retain(|id| *id != consumer);
        self.requeue(c.unacked.into_values().collect(), effects);
        true
    }

    /// Back to the queue with one more delivery attempt counted; over the
    /// delivery limit it is dead-lettered instead.
    fn requeue(&mut self, mut msgs: Vec<Msg>, effects: &mut Vec<Effect>) {
        msgs.sort_by_key(|m| m.id);
        for mut m in msgs {
            m.delivery_count = m.delivery_count.saturating_add(1);
            if self
                .config
                .delivery_limit
                .is_some_and(|l| m.delivery_count > l)
            {
                effects.push(dead(DeadLetterReason::DeliveryLimit, m));
                continue;
            }
            self.ready_bytes += m.message.size();
            // Keep returns in message order so redelivery follows publish
            // order.
            let pos = self.returns.partition_point(|r| r.id < m.id);
            self.returns.insert(pos, m);
        }
    }

    /// Hands ready messages to consumers with credit: the highest
    /// `x-priority` first, round robin among equals; with
    /// single-active-consumer only to the first attached consumer.
    fn checkout(&mut self, effects: &mut Vec<Effect>) {
        loop {
            // A message that expired behind the one just handed out is
            // at the head now.
            self.expire(effects);
            if self.ready_count() == 0 {
                return;
            }
            let Some(id) = self.pick() else {
                return;
            };
            let Some(m) = self.pop_next() else {
                return;
            };
            if let Some(c) = self.consumers.get_mut(&id) {
                effects.push(deliver(id, c, m));
            }
        }
    }

    /// The consumer the next message goes to (moved to the back of the
    /// round-robin order), if one has credit.
    fn pick(&mut self) -> Option<ConsumerId> {
        if self.config.single_active {
            let id = *self.service.front()?;
            return self
                .consumers
                .get(&id)
                .is_some_and(|c| c.has_credit())
                .then_some(id);
        }
        let mut best: Option<(usize, i64)> = None;
        for (i, id) in self.service.iter().enumerate() {
            let Some(c) = self.consumers.get(id) else {
                continue;
            };
            if c.has_credit() && best.is_none_or(|(_, p)| c.priority > p) {
                best = Some((i, c.priority));
            }
        }
        let (i, _) = best?;
        let id = self.service.remove(i)?;
        self.service.push_back(id);
        Some(id)
    }
}

fn deliver(consumer: ConsumerId, c: &mut Consumer, m: Msg) -> Effect {
    let delivery_id = c.next_delivery;
    c.next_delivery += 1;
    let e = Effect::Deliver {
        consumer,
        node: c.node,
        delivery_id,
        redelivered: m.delivery_count > 0,
        delivery_count: m.delivery_count,
        message: m.message.clone(),
    };
    c.unacked.insert(delivery_id, m);
    e
}

fn dead(reason: DeadLetterReason, m: Msg) -> Effect {
    Effect::DeadLetter {
        reason,
        delivery_count: m.delivery_count,
        message: m.message,
    }
}
