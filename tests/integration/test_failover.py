"""Promotion, a stopped replica and a dead pgcheckd each change HAProxy's routing as documented."""

import time

import psycopg2
import pytest

import cluster as cl


def _is_down(status):
    return status.startswith("DOWN")


def _is_up(status):
    return status.startswith("UP")


def test_promote_moves_writes_to_promoted_replica(cluster, report):
    c = cluster
    old, new = c.pg[0], c.pg[1]
    c.through("write", "CREATE TABLE it_failover (id serial PRIMARY KEY, port int)")
    c.through("write", "INSERT INTO it_failover (port) VALUES (inet_server_port())")
    cl.wait_until(lambda: new.sql1("SELECT count(*) FROM it_failover") == 1, 5, desc="node2 to replay the table")

    # No fencing yet: stop the old primary before promoting, as the README says.
    old.stop()
    c.wait_status("be_primary", 0, _is_down, timeout=5, desc="node1 DOWN in be_primary after its PostgreSQL stopped")

    new.promote()
    t0 = time.monotonic()

    def write():
        try:
            return c.through("write", "INSERT INTO it_failover (port) VALUES (inet_server_port()) "
                                      "RETURNING port, pg_is_in_recovery()", timeout=1)
        except psycopg2.Error:
            return None
    rows = cl.wait_until(write, 10, interval=0.01, desc="a write through the write frontend after promote")
    elapsed = time.monotonic() - t0
    report(f"first successful write through the write frontend {elapsed * 1000:.0f} ms after "
           f"`pg_ctl promote -w` returned")
    assert rows == [(new.port, False)], f"the first write after promotion reached {rows}"

    for _ in range(10):
        assert c.where("write") == ("node2", False)
    st = c.haproxy.states("be_primary")
    assert _is_down(st["node1"][0]) and _is_up(st["node2"][0]) and _is_down(st["node3"][0]), \
        f"be_primary after promotion: {st}"
    assert c.agents[0].ask("primary").startswith("down #"), "the stopped old primary's agent still says up"
    assert c.agents[1].ask("primary") == "up 100%"
    assert c.agents[1].ask("replica") == "down #is-primary"


def test_stopped_replica_leaves_read_pool_and_returns(cluster, report):
    c = cluster
    before = c.spread("read", 10)
    assert before.get("node2", 0) > 0 and before.get("node3", 0) > 0, f"reads before: {before}"

    c.pg[2].stop()
    t0 = time.monotonic()
    c.wait_status("be_replicas", 2, _is_down, timeout=5, desc="node3 DOWN in be_replicas after its PostgreSQL stopped")
    report(f"stopped replica marked DOWN after {time.monotonic() - t0:.2f}s")
    answer = c.agents[2].ask("replica")
    assert answer.startswith("down #"), f"the stopped replica's agent answered {answer!r}"
    counts = c.spread("read", 12)
    assert counts == {"node2": 12}, f"reads while node3 is stopped: {counts}"

    c.pg[2].start()
    t1 = time.monotonic()
    c.wait_status("be_replicas", 2, _is_up, timeout=15, desc="node3 UP in be_replicas after its PostgreSQL started")
    report(f"restarted replica back UP {time.monotonic() - t1:.2f}s after it accepted connections")
    after = c.spread("read", 20)
    assert after.get("node2", 0) > 0 and after.get("node3", 0) > 0 and set(after) == {"node2", "node3"}, \
        f"reads after node3 came back: {after}"


def test_killed_pgcheckd_on_primary_takes_it_out_fail_closed(cluster, report):
    c = cluster
    assert c.where("write") == ("node1", False)
    c.agents[0].kill()
    t0 = time.monotonic()
    c.wait_status("be_primary", 0, _is_down, timeout=3, desc="node1 DOWN in be_primary after its pgcheckd died")
    report(f"node1 DOWN in be_primary {(time.monotonic() - t0) * 1000:.0f} ms after SIGKILL of its pgcheckd")
    assert c.pg[0].sql1("SELECT NOT pg_is_in_recovery()") is True, "the primary itself should still be fine"
    for _ in range(5):
        with pytest.raises(psycopg2.OperationalError):
            c.through("write", "SELECT inet_server_port()", timeout=2)
    time.sleep(1)  # and it stays out: agent-check alone would have failed open
    assert _is_down(c.haproxy.status("be_primary", "node1"))
    with pytest.raises(psycopg2.OperationalError):
        c.through("write", "SELECT inet_server_port()", timeout=2)
