//! What a peer (or anyone reaching the cluster port) can send a cluster
//! node: the link handshake, transport frames, and the payloads of each
//! group: the metadata group's and node RPCs' JSON, quorum queue groups'
//! bincode, classic-queue batches and deliveries (applied to a real broker
//! with a durable queue "q" in "/").
//!
//! Input layout: the first byte picks the decoder (low 3 bits) and, for
//! payload decoders, the RPC (the rest of the byte); the rest is the input.
//!
//! The contract: errors, never a panic, and no allocation larger than what
//! arrived (a hostile frame length must not reserve its 64 MiB; the run's
//! -rss_limit_mb catches that). A handshake without the cookie never
//! succeeds.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use warren_cluster::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let rpc = ctl >> 3;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        match ctl & 7 {
            0 => {
                fuzzing::frames(rest).await;
            }
            1 => assert!(!fuzzing::accept(rest).await, "handshake without the cookie"),
            2 => assert!(!fuzzing::dial(rest).await, "handshake without the cookie"),
            3 => fuzzing::meta_payloads(rpc, rest),
            4 => fuzzing::quorum_payloads(rpc, rest),
            _ => {
                let (b, dir) = common::broker("cluster");
                let v = b.vhost("/").expect("vhost /");
                let _ = v.declare_queue(
                    Some("q".into()),
                    warren_core::QueueOptions {
                        durable: true,
                        exclusive: false,
                        auto_delete: false,
                        arguments: Default::default(),
                    },
                    false,
                    0,
                );
                let _ = fuzzing::classic(b.clone(), rpc, rest).await;
                drop(v);
                common::close(b, dir);
            }
        }
    });
});
