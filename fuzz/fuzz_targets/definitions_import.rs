//! Imports arbitrary JSON as RabbitMQ definitions (`POST /api/definitions`,
//! `POST /api/definitions/{vhost}`, `warren ctl import_definitions`).
//!
//! Input layout: the first byte picks the import's scope (the whole broker or
//! vhost "/"), the rest is the JSON text (not JSON: nothing to import).
//!
//! The contract (RabbitMQ's, see `Broker::import_definitions`): an invalid
//! object is an error, never a panic; what was imported before it stays (no
//! rollback, as RabbitMQ). Beyond that, whatever imports must export, the
//! export must be JSON that imports again (into the same broker: every object
//! already exists, so it is a no-op that must still succeed), and the broker
//! must still reopen from its data directory with what it stored.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, text)) = data.split_first() else {
        return;
    };
    let Ok(defs) = serde_json::from_slice::<Value>(text) else {
        return;
    };
    let scope = if ctl & 1 == 0 { None } else { Some("/") };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (b, dir) = common::broker("defs");
        if b.import_definitions(&defs, scope, Some("guest")).is_ok() {
            let out = b.export_definitions(scope).expect("export after import");
            let text = serde_json::to_vec(&out).expect("export serializes");
            let back: Value = serde_json::from_slice(&text).expect("export is JSON");
            if let Err(e) = b.import_definitions(&back, scope, Some("guest")) {
                panic!("re-importing the export failed: {} {}", e.code, e.text);
            }
        }
        // What was stored reopens.
        b.store.log.shutdown();
        drop(b);
        let again = common::reopen(&dir);
        common::close(again, dir);
    });
});
