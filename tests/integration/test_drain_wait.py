"""`pgcheckd ctl drain --wait [SECONDS]` against a real HAProxy (conf/haproxy.cfg) and real PostgreSQL:
it returns 0 only once HAProxy sends the node nothing (no session, no new ones), 1 at its deadline or
when HAProxy cannot be asked; and the README's replica restart behind it fails no read."""

import subprocess
import threading
import time

import psycopg2
import pytest

import cluster as cl

NODE = 1  # node2, a replica


@pytest.fixture(scope="module")
def drained_cluster():
    c = cl.Cluster().start()
    try:
        c.agents[NODE].write_conf({"haproxy": {"runtime_api": f"127.0.0.1:{c.ports['api']}",
                                               "advertise_addr": "127.0.0.1",
                                               "advertise_pg_port": c.pg[NODE].port}})
        yield c
    finally:
        c.close()


def ctl(c, *args, ini=None, timeout=60):
    r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(ini or c.agents[NODE].ini), "ctl", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def ctl_popen(c, *args):
    return subprocess.Popen([cl.PGCHECKD_BIN, "-c", str(c.agents[NODE].ini), "ctl", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def hold_session_on_node2(c):
    """A client connection through the read frontend that landed on node2."""
    for _ in range(40):
        conn = c.connect_frontend("read")
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_port()")
            if cur.fetchone()[0] == c.pg[NODE].port:
                return conn
        conn.close()
    raise AssertionError("no read session reached node2")


@pytest.fixture
def ready_after(drained_cluster):
    yield drained_cluster
    assert ctl(drained_cluster, "ready")[0] == 0
    cl.wait_until(lambda: drained_cluster.haproxy.weight("be_replicas", "node2") > 0, 10,
                  desc="node2 back with weight")


def test_drain_wait_returns_once_the_held_session_is_released(ready_after):
    c = ready_after
    held = hold_session_on_node2(c)
    p = ctl_popen(c, "drain", "--wait", "60")
    try:
        cl.wait_until(lambda: c.haproxy.weight("be_replicas", "node2") == 0, 10, desc="node2 weight 0")
        # drained for new connections, but the held session is still there: it keeps waiting
        cl.wait_until(lambda: int(c.haproxy.servers("be_replicas")["node2"]["scur"]) == 1, 5)
        time.sleep(0.5)
        assert p.poll() is None, f"returned while a session was open: {p.communicate()}"
        with held.cursor() as cur:  # the session itself is left alone
            cur.execute("SELECT 1")
            assert cur.fetchone()[0] == 1
    finally:
        held.close()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, (out, err)
    assert out.startswith("ok drain\n") and f"drained: no HAProxy sends anything to 127.0.0.1:{c.pg[NODE].port}" \
        in out, out
    assert int(c.haproxy.servers("be_replicas")["node2"]["scur"]) == 0


def test_drain_wait_exits_1_at_its_deadline_naming_what_is_left(ready_after):
    c = ready_after
    held = hold_session_on_node2(c)
    try:
        code, out, err = ctl(c, "drain", "--wait", "1")
    finally:
        held.close()
    assert code == 1, (out, err)
    assert "not drained after 1 s" in err and "be_replicas/node2: 1 session" in err, err


def test_drain_wait_fails_closed_when_haproxy_cannot_be_asked(ready_after):
    c = ready_after
    dead = cl.free_ports(1)[0]
    ini = c.tmp / "unreachable.ini"
    ini.write_text(c.agents[NODE].ini.read_text().replace(f"127.0.0.1:{c.ports['api']}", f"127.0.0.1:{dead}"))
    code, out, err = ctl(c, "drain", "--wait", "30", ini=ini)
    assert code == 1, (out, err)
    assert f"not drained: HAProxy at 127.0.0.1:{dead} cannot be asked" in err, err
    # nothing to wait on at all: refused before the drain is set
    bare = c.tmp / "bare.ini"
    bare.write_text(cl.render_ini(c.agents[NODE].base_conf()))
    code, out, err = ctl(c, "drain", "--wait", ini=bare)
    assert code == 1 and out == "" and "[haproxy] runtime_api is empty" in err, (out, err)


def test_replica_restart_behind_drain_wait_fails_no_read(ready_after):
    """The README's procedure: drain --wait, stop (fast), start, ready. A reader opens new connections
    through the read frontend the whole time (200 of them at least); none may fail."""
    c = ready_after
    done, failed, ok = threading.Event(), [], [0]

    def reader():
        while not done.is_set() or ok[0] < 200:
            try:
                conn = c.connect_frontend("read")
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.close()
                ok[0] += 1
            except psycopg2.Error as e:
                failed.append(str(e).strip())
            if ok[0] + len(failed) >= 5000:
                break
            time.sleep(0.01)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        code, out, err = ctl(c, "drain", "--wait", "30")
        assert code == 0, (out, err)
        c.pg[NODE].stop("fast")
        c.pg[NODE].start()
        c.wait_streaming([NODE])
        cl.wait_until(lambda: c.agents[NODE].ask("replica") == "up 0%", 15, desc="node2 up again, drained")
        assert ctl(c, "ready")[0] == 0
        cl.wait_until(lambda: c.haproxy.weight("be_replicas", "node2") > 0
                      and c.haproxy.status("be_replicas", "node2").startswith("UP"), 15, desc="node2 back")
    finally:
        done.set()
        t.join(60)
    assert not failed, f"{len(failed)} of {ok[0] + len(failed)} reads failed: {failed[:3]}"
    assert ok[0] >= 200
