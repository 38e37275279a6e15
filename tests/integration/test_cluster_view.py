"""The cluster through the peers: `sync`/`async`/`quorum` from the primary's pg_stat_replication, keep-best
when every replica is over the lag limit, `/cluster`, `/cluster/replica?min_lsn=` and `pgcheckd ctl cluster`,
against a real primary and two streaming replicas whose pgcheckd list each other as authenticated peers.

One cluster for the module (lean: the whole file in well under a minute); each test leaves it as it found it.
"""

import http.client
import json
import os
import subprocess
import time

import pytest

import cluster as cl

KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
# keep-best with a tiny byte limit: an idle cluster is at 0 bytes, a write with replay paused is over it
CONF = {"pg": {"poll_interval_ms": "100"},
        "replica": {"over_lag": "keep-best", "max_lag_bytes": "1kB", "max_lag_s": "3600"},
        "weight": {"lag_soft_bytes": "512"}}


@pytest.fixture(scope="module")
def c():
    cl_ = cl.Cluster(replicas=2)
    keyfile = cl_.tmp / "peers.key"
    keyfile.write_text(KEY + "\n")
    os.chmod(keyfile, 0o600)
    ports = cl_.ports["agent"]
    cl_.pgcheckd_common = cl.merge_conf(CONF, {"peers": {"key_file": str(keyfile)}})
    cl_.pgcheckd_conf = {i: {"peers": {"addresses": ", ".join(f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i)}}
                         for i in range(cl_.n)}
    try:
        cl_.start(haproxy=False)
        yield cl_
    finally:
        cl_.close()


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def ctl(c, i, *args):
    r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(c.agents[i].ini), "ctl", *args], capture_output=True, timeout=10)
    return r.returncode, r.stdout.decode()


def up(c, i, req):
    return c.agents[i].ask(req).startswith("up")


def set_sync(c, names):
    c.pg[0].sql("ALTER SYSTEM SET synchronous_standby_names = %s", (names,))
    c.pg[0].sql("SELECT pg_reload_conf()")


def wait_sync(c, want, timeout=15):
    """want: {agent index: (request, up?)}; waits until every agent answers as wanted."""
    cl.wait_until(lambda: all(up(c, i, req) == ok for i, (req, ok) in want.items()), timeout,
                  desc=f"sync answers {want}: " + ", ".join(c.agents[i].ask(r) for i, (r, _) in want.items()))


def test_replica_names_come_from_the_wal_receiver(c, report):
    # PostgreSQL 15: pg_stat_wal_receiver.conninfo shows primary_conninfo's application_name, or the
    # receiver's fallback_application_name (cluster_name); the primary lists the standbys by that name
    for i in (1, 2):
        conninfo = c.pg[i].sql1("SELECT conninfo FROM pg_stat_wal_receiver")
        report(f"node{i + 1} receiver conninfo: {conninfo}")
        assert f"application_name=node{i + 1}" in conninfo
    names = sorted(r[0] for r in c.pg[0].sql("SELECT application_name FROM pg_stat_replication"))
    assert names == ["node2", "node3"]
    cl.wait_until(lambda: sorted(n["name"] for n in json.loads(ctl(c, 0, "cluster", "--json")[1])["nodes"])
                  == ["node1", "node2", "node3"], 10, desc="every node named in /cluster")


def test_sync_is_up_on_exactly_the_synchronous_standby_and_moves(c, report):
    try:
        set_sync(c, "node2")
        wait_sync(c, {1: ("sync", True), 2: ("sync", False)})
        wait_sync(c, {1: ("async", False), 2: ("async", True)})
        assert c.agents[2].ask("sync") == "down #sync-state async"
        assert c.agents[0].ask("sync") == "down #is-primary"
        set_sync(c, "node3")
        t0 = time.monotonic()
        wait_sync(c, {1: ("sync", False), 2: ("sync", True)})
        report(f"sync moved node2 -> node3 {time.monotonic() - t0:.2f}s after pg_reload_conf()")
        wait_sync(c, {1: ("async", True), 2: ("async", False)})
        set_sync(c, "ANY 1 (node2, node3)")
        wait_sync(c, {1: ("quorum", True), 2: ("quorum", True)})
        wait_sync(c, {1: ("sync", False), 2: ("sync", False)})
        assert c.agents[1].ask("sync") == "down #sync-state quorum"
    finally:
        set_sync(c, "")


def test_sync_is_down_when_the_primary_word_is_stale(c, report):
    try:
        set_sync(c, "node2")
        wait_sync(c, {1: ("sync", True)})
        c.agents[0].stop()
        t0 = time.monotonic()
        wait_sync(c, {1: ("sync", False), 2: ("async", False)})
        report(f"sync down {time.monotonic() - t0:.2f}s after the primary's pgcheckd stopped (fresh_ms 2000)")
        assert c.agents[1].ask("sync") == "down #sync-unknown"
        assert c.agents[1].ask("replica").startswith("up")  # only the sync word is unknown
        c.agents[0].start()
        wait_sync(c, {1: ("sync", True), 2: ("async", True)})
    finally:
        set_sync(c, "")
        if not c.agents[0].running():
            c.agents[0].start()


def test_keep_best_keeps_exactly_one_replica_up_and_cluster_replica_falls_back(c, report):
    c.pg[0].sql("CREATE TABLE IF NOT EXISTS kb (v int)")
    wait_sync(c, {1: ("replica", True), 2: ("replica", True)})
    for i in (1, 2):
        c.pg[i].pause_replay()
    try:
        for i in (1, 2):
            cl.wait_until(lambda i=i: c.pg[i].sql1("SELECT pg_get_wal_replay_pause_state()") == "paused", 10)
        c.pg[0].sql("INSERT INTO kb SELECT generate_series(1, 2000)")
        lsn = c.pg[0].sql1("SELECT pg_current_wal_insert_lsn()::text")

        def reasons():
            return [json.loads(ctl(c, i, "status")[1])["verdicts"]["replica"] for i in (1, 2)]

        def one_kept():
            rs = reasons()
            kept = [i for i, r in zip((1, 2), rs) if r["up"] and r["reason"].startswith("keep-best lag ")]
            lagging = [i for i, r in zip((1, 2), rs) if not r["up"] and r["reason"].startswith("lag ")]
            return len(kept) == 1 and len(lagging) == 1 and kept

        kept = cl.wait_until(one_kept, 15, desc=f"one replica kept: {reasons()}")
        report(f"keep-best: {reasons()}")
        other = 3 - kept[0]
        assert c.agents[kept[0]].ask("replica") == "up 10%"
        st = json.loads(ctl(c, kept[0], "status")[1])
        assert st["verdicts"]["replica"]["weight"] == 10  # the floor
        assert c.agents[other].ask("replica").startswith("down #lag ")
        # a request with its own lag limit is answered as asked
        assert c.agents[kept[0]].ask("replica lag=1kB").startswith("down #lag ")
        # no replica has the write: /cluster/replica falls back to the primary
        status, body = http_get(c.ports["agent"][1], f"/cluster/replica?min_lsn={lsn}")
        got = json.loads(body)
        assert status == 200 and got["role"] == "primary" and got["port"] == c.pg[0].port, body
    finally:
        for i in (1, 2):
            c.pg[i].resume_replay()
    cl.wait_until(lambda: all(c.agents[i].ask("replica").startswith("up") for i in (1, 2))
                  and all("keep-best" not in c.agents[i].ask("replica") for i in (1, 2)), 15, desc="both back")
    # once the primary's pgcheckd has read the replicas' new answers, a replica serves the read
    got = cl.wait_until(lambda: (lambda st, b: st == 200 and json.loads(b)["role"] == "replica" and json.loads(b))(
        *http_get(c.ports["agent"][0], f"/cluster/replica?min_lsn={lsn}")), 10, desc="a replica for the read")
    assert got["port"] in (c.pg[1].port, c.pg[2].port) and got["host"] == "127.0.0.1", got


def test_ctl_cluster_json_matches_each_node_status(c):
    def consistent():
        nodes = json.loads(ctl(c, 0, "cluster", "--json")[1])["nodes"]
        by_name = {n["name"]: n for n in nodes}
        for i in range(c.n):
            st = json.loads(ctl(c, i, "status")[1])
            row = by_name.get(f"node{i + 1}")
            kind = "primary" if st["role"] == "primary" else "replica"
            if row is None or not row["fresh"] or row["role"] != st["role"] or row["timeline"] != st["timeline"]:
                return False
            if row["weight"] != st["verdicts"][kind]["weight"] or row["fenced"]:
                return False
            if row["lsn"] != (st["current_lsn"] if kind == "primary" else st["replay_lsn"]):
                return False
        return len(nodes) == c.n

    cl.wait_until(consistent, 10, desc="ctl cluster --json as each node's /status")
    status, body = http_get(c.ports["agent"][2], "/cluster")
    assert status == 200 and len(json.loads(body)["nodes"]) == c.n
    rc, table = ctl(c, 0, "cluster")
    assert rc == 0 and table.splitlines()[0].split()[:3] == ["NODE", "ADDRESS", "ROLE"], table
    assert len(table.splitlines()) == 1 + c.n, table
