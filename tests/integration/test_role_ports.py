"""Role ports are pgcheckd's whatever the role: bound from the start, listening only while the node
holds the role, so no other local user can take one and answer a plain `check port N` for it; and a
role port closes as soon as the sample goes stale, with or without an event from the poller."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import cluster as cl

ATTACKER = r"""
import socket, sys
port = int(sys.argv[1])
for name, opt in (("plain", None), ("SO_REUSEADDR", socket.SO_REUSEADDR), ("SO_REUSEPORT", socket.SO_REUSEPORT)):
    s = socket.socket()
    if opt is not None:
        s.setsockopt(socket.SOL_SOCKET, opt, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(8)
        print(name, "bound")
    except OSError as e:
        print(name, "refused", e.errno)
    s.close()
"""


def try_to_take(port, user=None):
    """Another process (as `user`, or as this one's user) tries to bind and listen on port."""
    cmd = [sys.executable, "-c", ATTACKER, str(port)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


def role_cluster(extra=None):
    ports = cl.free_ports(4)
    conf = {i: cl.merge_conf({"agent": {"primary_port": ports[2 * i], "replica_port": ports[2 * i + 1]}}, extra or {})
            for i in range(2)}
    return cl.Cluster(replicas=1, pgcheckd_conf=conf).start(haproxy=False), ports


def test_a_role_port_the_node_does_not_hold_cannot_be_taken():
    c, ports = role_cluster()
    with c:
        replica_primary_port, primary_replica_port = ports[2], ports[1]
        cl.wait_until(lambda: cl.port_accepts(ports[0]) and cl.port_accepts(ports[3]), 10, desc="role ports open")
        # not listening: a plain TCP check is refused
        assert not cl.port_accepts(replica_primary_port)
        assert not cl.port_accepts(primary_replica_port)
        nobody = 65534
        for port in (replica_primary_port, primary_replica_port):
            got = try_to_take(port, user=nobody)
            assert all(v.startswith("refused") for v in got.values()), (port, got)
            # the same user as pgcheckd can share a SO_REUSEPORT port (the kernel's rule); any other way fails
            got = try_to_take(port)
            assert got["plain"].startswith("refused") and got["SO_REUSEADDR"].startswith("refused"), (port, got)
        assert not cl.port_accepts(replica_primary_port)
        # the role moves: the port that was held closed now opens for its new holder
        c.pg[0].stop()
        c.pg[1].promote()
        cl.wait_until(lambda: cl.port_accepts(replica_primary_port) and not cl.port_accepts(ports[3]), 10,
                      desc="node2's primary port to open and its replica port to close")
        assert cl.agent_request(replica_primary_port) == b"100% up\n"  # nothing asked: weight first
        got = try_to_take(ports[3], user=nobody)
        assert all(v.startswith("refused") for v in got.values()), got


def test_pgcheckd_refuses_to_start_when_its_role_port_is_taken():
    c, ports = role_cluster()
    with c:
        a = c.agents[1]
        a.stop()
        squatter = socket.socket()
        squatter.bind(("127.0.0.1", ports[2]))
        squatter.listen(1)
        try:
            a.start(wait=False)
            assert a.wait_exit(10) == 1
            assert str(ports[2]) in a.log()
        finally:
            squatter.close()


def status(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /status HTTP/1.0\r\n\r\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf.split(b"\r\n\r\n", 1)[1])


def test_primary_port_is_closed_from_the_first_down_answer_when_the_postmaster_freezes(report):
    """The poller's idle connection is cut while the postmaster is frozen: the poller retries at once
    (no report) and that connect hangs until its deadline. From the agent's first down answer on (the
    connect deadline, or the stale limit, whichever comes first), the primary port is closed. Before the
    configuration refused poll_interval_ms + connect_timeout_ms above stale_after_ms, the port stayed
    open past the stale limit; now the connect deadline comes first here, and the stale timer is the
    defence behind it."""
    # the longest deadlines the configuration accepts (poll_interval_ms + connect_timeout_ms may not pass
    # stale_after_ms): before that rule, 2000 + 2900 against 3000 kept the port open 307 and 1458 ms late
    stale_ms, connect_ms = 3000, 1950
    c, ports = role_cluster({"pg": {"stale_after_ms": stale_ms, "poll_interval_ms": 1000,
                                    "query_timeout_ms": 500, "connect_timeout_ms": connect_ms}})
    with c:
        a = c.agents[0]
        cl.wait_until(lambda: cl.port_accepts(ports[0]), 10, desc="primary port open")
        lates, answers = [], []
        for _round in range(2):
            cl.wait_until(lambda: a.ask("primary") == "up 100%" and cl.port_accepts(ports[0]), 20,
                          desc="the primary up again")
            pids = [r[0] for r in c.pg[0].sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcheckd'")]
            if not pids:
                pids = [r[0] for r in c.pg[0].sql(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")]
            assert pids, "pgcheckd's session not found"
            time.sleep(0.3 + 0.6 * _round)  # a different phase against the 1 s poll interval each round
            postmaster = c.pg[0].pid
            os.kill(postmaster, signal.SIGSTOP)
            try:
                for pid in pids:
                    os.kill(pid, signal.SIGTERM)  # what pg_terminate_backend does
                # the agent's own word decides, not this process's clock: from its first down answer on,
                # the port must be closed (a connect in flight as the timer fires gets one retry)
                answer = None
                deadline = time.monotonic() + stale_ms / 1000.0 + 3
                while time.monotonic() < deadline:
                    answer = a.ask("primary")
                    if answer != "up 100%":
                        break
                    time.sleep(0.005)
                # stale or the connect deadline, whichever comes first (the round's phase decides)
                assert answer in ("down #stale", "down #connect-timeout"), answer
                answers.append(answer)
                open_after = sum(1 for _ in range(2) if cl.port_accepts(ports[0], timeout=0.2) or time.sleep(0.01))
                age_ms = status(a.port)["sample_age_ms"]
            finally:
                os.kill(postmaster, signal.SIGCONT)
            lates.append((open_after, age_ms))
        report("after the agent answered %s: the primary port accepted %s of 2 connects (sample ages then: %s ms)"
               % (answers, [o for o, _ in lates], [x for _, x in lates]))
        # before the stale timer, the port stayed open until the connect deadline: 307 and 1458 ms later
        assert all(o == 0 for o, _ in lates), lates


def test_replica_port_closes_when_lag_drains_the_replica(report):
    """With over_lag = drain a replica over the limit answers 'up 0%' on the agent port (HAProxy drains
    it); a plain TCP check sees no weight, so its replica port must close."""
    c, ports = role_cluster({"replica": {"max_lag_bytes": "1MB", "over_lag": "drain"}})
    with c:
        replica_port = ports[3]
        cl.wait_until(lambda: cl.port_accepts(replica_port), 10, desc="node2's replica port open")
        c.pg[1].pause_replay()
        try:
            c.pg[0].sql("CREATE TABLE lagdrain (x text)")
            c.pg[0].sql("INSERT INTO lagdrain SELECT repeat('x', 1000) FROM generate_series(1, 4000)")
            cl.wait_until(lambda: c.agents[1].ask("replica").startswith("up 0%"), 15,
                          desc="node2 drained for lag")
            cl.wait_until(lambda: not cl.port_accepts(replica_port), 5, desc="node2's replica port closed")
            report(f"drained for lag: agent says {c.agents[1].ask('replica')!r}, replica port closed")
        finally:
            c.pg[1].resume_replay()
        cl.wait_until(lambda: cl.port_accepts(replica_port), 15, desc="node2's replica port open again")


def test_role_ports_close_before_a_slow_withdrawal_at_shutdown(report):
    """SIGTERM with no drain while the HAProxy runtime API never answers: pgcheckd waits up to
    [haproxy] timeout_ms for the withdrawal, and no port may accept connections meanwhile."""
    import fake_runtime_api as fake

    c, ports = role_cluster()
    with c:
        frozen = fake.FrozenUnixApi(c.tmp / "frozen.sock")
        try:
            a = c.agents[0]
            a.stop()
            a.write_conf({"agent": {"shutdown_drain_ms": 0},
                          "haproxy": {"runtime_api": frozen.path, "template_backends": "be_primary:pg",
                                      "advertise_addr": "127.0.0.1", "advertise_pg_port": c.pg[0].port,
                                      "timeout_ms": 3000}})
            a.start()
            cl.wait_until(lambda: cl.port_accepts(ports[0]), 10, desc="the primary port open")
            a.sigterm()
            t0 = time.monotonic()
            cl.wait_until(lambda: not cl.port_accepts(ports[0], timeout=0.2) and not cl.port_accepts(a.port, timeout=0.2),
                          2, interval=0.01, desc="the ports closed after SIGTERM")
            closed_after = time.monotonic() - t0
            alive = a.running()
            a.wait_exit(10)
            report(f"ports closed {closed_after * 1000:.0f} ms after SIGTERM; still withdrawing then: {alive}")
            assert alive, "pgcheckd had already exited: the test saw nothing of the withdrawal wait"
        finally:
            frozen.close()
