"""conf/haproxy-quiet.cfg: replicas show as NOLB in the write backend, not DOWN, and nothing fails open."""

import subprocess

import psycopg2

import cluster as cl

QUIET_CFG = cl.REPO / "conf" / "haproxy-quiet.cfg"


def ctl(agent, command):
    return subprocess.run([cl.PGCHECKD_BIN, "-c", str(agent.ini), "ctl", command], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=10).returncode


def write_lands(h):
    """Where one write through h's write frontend lands: (port, in_recovery), or the error's class name."""
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=h.write_port, user=cl.PG_USER, dbname="postgres",
                                connect_timeout=3)
    except psycopg2.OperationalError as e:
        return type(e).__name__
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_port(), pg_is_in_recovery()")
            return cur.fetchone()
    finally:
        conn.close()


def status(h, server):
    return h.states("be_primary")[server][0]


def test_replicas_are_nolb_in_the_quiet_write_backend_and_it_still_fails_closed(shared_cluster, report):
    c = shared_cluster
    h = c.extra_haproxy(QUIET_CFG, name="haproxy-quiet")
    primary = c.agents[0]
    try:
        cl.wait_until(lambda: status(h, "node1") == "UP" and status(h, "node2") == "NOLB"
                      and status(h, "node3") == "NOLB", 10, interval=0.1,
                      desc="node1 UP and the replicas NOLB in be_primary")
        lands = {write_lands(h) for _ in range(10)}
        assert lands == {(c.pg[0].port, False)}, lands
        # a node in trouble is DOWN, not quiet: maintenance on a replica answers 503
        assert ctl(c.agents[1], "maint") == 0
        cl.wait_until(lambda: status(h, "node2") == "DOWN", 10, interval=0.1, desc="node2 DOWN in be_primary")
        # the primary out: the NOLB replicas do not count, so writes are refused, not sent to a replica
        assert ctl(primary, "maint") == 0
        cl.wait_until(lambda: status(h, "node1") == "DOWN", 10, interval=0.1, desc="node1 DOWN in be_primary")
        assert status(h, "node3") == "NOLB"
        refused = [write_lands(h) for _ in range(3)]  # each held 1 s by the write frontend, then refused
        report(f"primary in maintenance, node3 NOLB: writes got {sorted(set(map(str, refused)))}")
        assert all(r == "OperationalError" for r in refused), refused
        assert ctl(primary, "ready") == 0
        cl.wait_until(lambda: write_lands(h) == (c.pg[0].port, False), 10, interval=0.1,
                      desc="writes through the quiet HAProxy again")
        # HAProxy takes a 404 as NOLB only from a server that was UP: node2, back from maintenance,
        # answers 404 again but stays DOWN (README)
        assert ctl(c.agents[1], "ready") == 0
        cl.wait_until(lambda: c.agents[1].ask("replica") != "down #maint", 5, desc="node2 out of maintenance")
        seen = {status(h, "node2") for _ in range(5) if not cl.time.sleep(0.2)}
        report(f"be_primary after node2 left maintenance: node2 {seen}, all {h.states('be_primary')}")
        assert seen == {"DOWN"}, seen
    finally:
        h.stop()
        ctl(primary, "ready")
        ctl(c.agents[1], "ready")
