"""History checks under faults (nodes in network namespaces): clients change
metadata on random nodes while nodes are killed -9 and restarted and one is
partitioned away; after healing, every node shows the same metadata and it
is what the answered operations say (see ``history.MetadataWorkload``).

30 faults by default (about 80 s); ``WARREN_HISTORY_FAULTS`` sets another
count (fewer for a quick run, more for a long one). ``WARREN_HISTORY_SEED``
replays a fault schedule (the timing still varies). Each run's schedule,
outcome counts and verdict go to ``WARREN_HISTORY_DIR`` (default
bench/results/cluster-history/).

The quorum queue version runs publishers with confirms and consumers with
manual acks (prefetch 50) on two quorum queues, reconnecting across nodes
(see ``history.QuorumWorkload``); it skips only on a build whose quorum
queues cannot be consumed.
"""

import os
import random

import pytest

from cluster_harness import netns_unusable, started_netcluster
from history import MetadataWorkload, QuorumWorkload, quorum_supported, run_with_faults

pytestmark = pytest.mark.skipif(netns_unusable() is not None, reason=str(netns_unusable()))

FAULTS = int(os.environ.get("WARREN_HISTORY_FAULTS", "30"))
SEED = int(os.environ.get("WARREN_HISTORY_SEED", str(random.randrange(1 << 30))))


@pytest.fixture
def cluster():
    # Snapshots every 100 entries, so nodes restarted behind the purged log
    # catch up from a snapshot during the run too.
    with started_netcluster(env={"WARREN_CLUSTER_SNAPSHOT_LOGS": "100"}) as c:
        yield c


@pytest.mark.timeout(120 + 8 * FAULTS)
def test_metadata_history_under_faults(cluster):
    w = MetadataWorkload(clients=4)
    rec = run_with_faults(cluster, w, FAULTS, SEED, "metadata")
    print(f"seed {SEED}: {rec['faults']} faults in {rec['duration_s']} s, "
          f"outcomes {rec['outcomes']}, {rec['summary']['clients_with_uncertain_state']} "
          f"clients with an uncertain state; record {rec['path']}")
    assert rec["faults"] >= min(FAULTS, 1)
    assert rec["outcomes"].get("ok", 0) >= 20, rec["outcomes"]


@pytest.mark.timeout(180 + 8 * FAULTS)
def test_quorum_queue_history_under_faults(cluster):
    if not quorum_supported(cluster.node("n1")):
        pytest.skip("this build's quorum queues cannot be consumed (no quorum queue, or basic.consume refused)")
    w = QuorumWorkload()
    rec = run_with_faults(cluster, w, FAULTS, SEED, "quorum")
    print(f"seed {SEED}: {rec['faults']} faults, outcomes {rec['outcomes']}; {rec['path']}")
    assert rec["outcomes"]["confirmed"] > 0
