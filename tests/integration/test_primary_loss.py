"""When the primary dies, its replicas keep serving reads while their data is younger than the time
lag limit, then leave the read pool (down #disconnected): reads stay available through a failover."""

import time

import pytest

import cluster as cl


@pytest.mark.cluster_conf(common={"replica": {"max_lag_s": "3"}, "weight": {"lag_soft_s": "1"}})
def test_replicas_serve_reads_after_primary_loss_within_time_limit(cluster, report):
    c = cluster
    c.pg[0].stop()
    t0 = time.monotonic()
    c.wait_status("be_primary", 0, lambda s: s.startswith("DOWN"), timeout=5)
    # the WAL receivers have stopped, yet within the limit the replicas still take reads
    cl.wait_until(lambda: not c.pg[1].streaming(), 5, desc="node2's receiver to stop")
    assert time.monotonic() - t0 < 2.5
    assert c.agents[1].ask("replica").startswith("up")
    node, in_recovery = c.where("read")
    assert node in ("node2", "node3") and in_recovery
    # past the limit they are down: their data may now be older than max_lag_s
    for i in (1, 2):
        cl.wait_until(lambda i=i: c.agents[i].ask("replica") == "down #disconnected", 10,
                      desc=f"node{i + 1} disconnected")
    report(f"replicas left the read pool {time.monotonic() - t0:.1f}s after the primary stopped (max_lag_s 3)")
    c.wait_routing(primary=None, replicas=[], timeout=5)
