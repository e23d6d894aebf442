//! `/api/consumers[/VHOST]`: second phase, not routed yet. Consumer listings
//! (tag, queue, channel, ack mode, prefetch) come from the core once queues
//! expose their consumers' metadata.
