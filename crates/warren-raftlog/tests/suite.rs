//! openraft's own storage test suite against `GroupLog`, with a minimal
//! in-memory state machine (the suite needs one; the log is under test).

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftTypeConfig, StorageError, StoredMembership,
};
use parking_lot::Mutex;
use tempfile::TempDir;
use warren_raftlog::{GroupLog, SharedWal, WalOptions};

openraft::declare_raft_types!(pub Tc: D = String, R = String);

#[derive(Default, Clone)]
struct SmState {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
}

#[derive(Default, Clone)]
struct MemSm(Arc<Mutex<SmState>>);

impl RaftSnapshotBuilder<Tc> for MemSm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Tc>, StorageError<u64>> {
        let mut s = self.0.lock();
        let meta = SnapshotMeta {
            last_log_id: s.applied,
            last_membership: s.membership.clone(),
            snapshot_id: format!("{:?}", s.applied),
        };
        s.snapshot = Some((meta.clone(), Vec::new()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

impl RaftStateMachine<Tc> for MemSm {
    type SnapshotBuilder = MemSm;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let s = self.0.lock();
        Ok((s.applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError<u64>>
    where
        I: IntoIterator<Item = <Tc as RaftTypeConfig>::Entry> + Send,
    {
        let mut s = self.0.lock();
        let mut out = Vec::new();
        for e in entries {
            let e: Entry<Tc> = e;
            s.applied = Some(e.log_id);
            if let EntryPayload::Membership(m) = e.payload {
                s.membership = StoredMembership::new(Some(e.log_id), m);
            }
            out.push(String::new());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let mut s = self.0.lock();
        s.applied = meta.last_log_id;
        s.membership = meta.last_membership.clone();
        s.snapshot = Some((meta.clone(), snapshot.into_inner()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Tc>>, StorageError<u64>> {
        let s = self.0.lock();
        Ok(s.snapshot.as_ref().map(|(m, d)| Snapshot {
            meta: m.clone(),
            snapshot: Box::new(Cursor::new(d.clone())),
        }))
    }
}

struct Builder;

impl StoreBuilder<Tc, GroupLog<Tc>, MemSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, GroupLog<Tc>, MemSm), StorageError<u64>> {
        let dir = TempDir::new().expect("tempdir");
        let wal = SharedWal::open(dir.path(), WalOptions::default()).expect("open wal");
        // A second group shares the log, so the suite also checks that
        // groups do not see each other's records.
        let _other: GroupLog<Tc> = wal.group(99);
        Ok((dir, wal.group(7), MemSm::default()))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}
