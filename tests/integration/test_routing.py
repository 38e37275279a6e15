"""Writes reach the primary, reads reach the replicas, and HAProxy's weights are the agents' answers."""

import time

import pytest

import cluster as cl


def test_writes_through_write_frontend_land_on_primary(shared_cluster):
    c = shared_cluster
    primary = c.pg[0]
    c.through("write", "CREATE TABLE IF NOT EXISTS it_routing (id serial PRIMARY KEY, port int, in_recovery bool)")
    for _ in range(10):
        rows = c.through("write", "INSERT INTO it_routing (port, in_recovery) "
                                  "SELECT inet_server_port(), pg_is_in_recovery() RETURNING port, in_recovery")
        assert rows == [(primary.port, False)], f"a write through the write frontend reached {rows}"
    assert primary.sql1("SELECT count(*) FROM it_routing WHERE port = %s", (primary.port,)) >= 10


def test_reads_through_read_frontend_land_only_on_replicas_and_spread(shared_cluster):
    c = shared_cluster
    seen = {}
    for _ in range(30):
        node, in_recovery = c.where("read")
        assert in_recovery is True, f"a read through the read frontend reached {node}, which is not in recovery"
        seen[node] = seen.get(node, 0) + 1
    assert set(seen) == {"node2", "node3"}, f"reads went to {seen}; expected both replicas and nothing else"


def test_haproxy_weights_equal_agent_answers(shared_cluster, report):
    c = shared_cluster

    def agree():
        out = {}
        for i in (1, 2):
            before = c.agents[i].ask("replica")
            weight = c.haproxy.weight("be_replicas", c.name(i))
            after = c.agents[i].ask("replica")
            pct = cl.parse_pct(before)
            if pct is None or before != after or weight != pct:
                return None
            out[c.name(i)] = (before, weight)
        primary_answer = c.agents[0].ask("primary")
        if primary_answer != "up 100%" or c.haproxy.weight("be_primary", "node1") != 100:
            return None
        out["node1"] = (primary_answer, 100)
        return out

    try:
        res = cl.wait_until(agree, 5, interval=0.1, desc="HAProxy weights to equal the agents' answers")
    except TimeoutError:
        answers = {c.name(i): c.agents[i].ask("replica") for i in (1, 2)}
        pytest.fail(f"HAProxy be_replicas {c.haproxy.states('be_replicas')} never matched the agents' "
                    f"answers {answers} (be_primary {c.haproxy.states('be_primary')}, "
                    f"node1 primary answer {c.agents[0].ask('primary')!r})")
    report(f"agent answers and HAProxy weights: {res}")


@pytest.mark.cluster_conf(pgcheckd={2: {"agent": {"shutdown_drain_ms": 3000}}})
def test_reads_follow_agent_weight_drained_replica_gets_none(cluster, report):
    """SIGTERM makes node3's agent answer 'up 0%' for its drain time: HAProxy's weight for node3 goes to 0,
    every read goes to node2; then pgcheckd exits 0 and node3 is DOWN."""
    c = cluster
    first = c.spread("read", 20)
    assert first.get("node2", 0) > 0 and first.get("node3", 0) > 0, f"reads before the drain: {first}"

    agent = c.agents[2]
    agent.sigterm()
    t0 = time.monotonic()
    # the signal is handled on the loop's next turn: a check that was already being accepted may come first
    answer = cl.wait_until(lambda: agent.ask("replica") == "up 0%" and "up 0%", 1, interval=0.005,
                           desc="a draining replica to answer 'up 0%' to 'replica'")
    assert answer == "up 0%"
    cl.wait_until(lambda: c.haproxy.weight("be_replicas", "node3") == 0, 2,
                  desc="HAProxy weight of node3 to become 0")
    status = c.haproxy.status("be_replicas", "node3")
    assert not status.startswith("DOWN"), f"node3 should still be up (weight 0) while draining, is {status}"
    counts = c.spread("read", 20)
    assert counts == {"node2": 20}, f"reads while node3 is drained: {counts}"
    assert time.monotonic() - t0 < 3, "the checks above took longer than the drain; the test is not valid"

    rc = agent.wait_exit(timeout=8)
    took = time.monotonic() - t0
    report(f"pgcheckd exited {rc} {took:.2f}s after SIGTERM (shutdown_drain_ms=3000)")
    assert rc == 0, f"pgcheckd exited with {rc} after its drain"
    assert took >= 2.5, f"pgcheckd exited {took:.2f}s after SIGTERM, before its 3 s drain"
    c.wait_status("be_replicas", 2, lambda s: s.startswith("DOWN"), timeout=3)
    assert c.spread("read", 10) == {"node2": 10}


@pytest.mark.cluster_conf(replicas=0, haproxy=False, common={"agent": {"shutdown_drain_ms": 20000}})
def test_second_sigterm_exits_at_once(cluster):
    agent = cluster.agents[0]
    assert agent.ask("primary") == "up 100%"
    agent.sigterm()
    assert cl.wait_until(lambda: agent.ask("primary") == "up 0%", 2, desc="'up 0%' while draining")
    time.sleep(0.2)
    assert agent.running(), "pgcheckd exited right after one SIGTERM although shutdown_drain_ms = 20000"
    t0 = time.monotonic()
    agent.sigterm()
    rc = agent.wait_exit(timeout=5)
    assert time.monotonic() - t0 < 1.0, "a second SIGTERM did not make pgcheckd exit at once"
    assert rc == 0


@pytest.mark.cluster_conf(pgcheckd={1: {"weight": {"load_low_per_cpu": 999, "load_high_per_cpu": 1000,
                                                   "smoothing_ms": 0}},
                                    2: {"weight": {"load_low_per_cpu": 0, "load_high_per_cpu": 0.01,
                                                   "smoothing_ms": 0}}})
def test_reads_follow_agent_weights_in_proportion(cluster, report):
    """node3's pgcheckd counts any host load as full load, so it reports the floor weight (10%), while
    node2's ignores host load (so a busy test machine cannot lower it): HAProxy shows exactly those weights and the reads split in that proportion."""
    c = cluster
    load1 = float(open("/proc/loadavg").read().split()[0])
    if load1 < 0.02:
        pytest.skip(f"1-minute load average {load1} is too low for load_high_per_cpu = 0.01 to bite")

    def weights():
        a2, a3 = c.agents[1].ask("replica"), c.agents[2].ask("replica")
        w = c.haproxy.states("be_replicas")
        p2, p3 = cl.parse_pct(a2), cl.parse_pct(a3)
        ok = p2 is not None and p3 is not None and w["node2"][1] == p2 and w["node3"][1] == p3 and p3 < p2
        return ok and (a2, a3, w["node2"][1], w["node3"][1])
    a2, a3, w2, w3 = cl.wait_until(weights, 5, interval=0.1,
                                   desc="HAProxy weights = agent answers with node3 below node2")
    assert a3 == "up 10%", f"node3 at full load should report the floor weight, answered {a3!r}"
    n = 4 * (w2 + w3) // 10
    counts = c.spread("read", n)
    expect3 = n * w3 / (w2 + w3)
    report(f"weights node2={w2} node3={w3} (agents: {a2!r}, {a3!r}); {n} reads: {counts}, "
           f"node3 expected about {expect3:.1f}")
    assert set(counts) <= {"node2", "node3"}, f"reads went elsewhere: {counts}"
    assert abs(counts.get("node3", 0) - expect3) <= max(2, 0.25 * expect3), \
        f"reads {counts} do not follow the weights node2={w2} node3={w3}"


def test_reads_fall_back_to_the_primary_while_no_replica_is_up():
    """conf/haproxy.cfg never empties the read pool: with every replica down, fe_read sends reads to the
    node that answers 'read-only' up (the primary), and back to the replicas once one is up again."""
    c = cl.Cluster(replicas=1)
    try:
        c.start()
        c.wait_routing(primary=0, replicas=[1], timeout=10)
        assert c.where("read")[0] == "node2"
        c.pg[1].stop("fast")
        cl.wait_until(lambda: c.haproxy.status("be_replicas", "node2").startswith("DOWN"), 5, interval=0.02)
        assert c.where("read") == ("node1", False)  # the primary, not in recovery
        c.pg[1].start()
        cl.wait_until(lambda: c.where("read")[0] == "node2", 10, desc="reads back on the replica")
    finally:
        c.close()
