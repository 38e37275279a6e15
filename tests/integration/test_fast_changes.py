"""Role changes seen at once and pushed to HAProxy (issue 13, items 1 and 2).

- [pg] data_directory watched: a shutdown that begins is down at once (pg-stopping) and pgcheckd lets go of
  its session (a smart shutdown used to wait for it for ever); a promotion is seen without waiting for the
  poll interval (a minute here: only the watch can explain the change).
- a promoted node alerts its peers: the old primary fences itself without waiting for its own read.
- [haproxy] push_servers: a transition to unfit is pushed ("set server B/S health down") to every runtime
  API; nothing is pushed on the way up (HAProxy's check brings the node back); an API that refuses or hangs
  is retried on its own thread, logged once, and neither the checks nor the other HAProxy wait for it.
  A weight that drops to 0 (drain) is pushed too ("set server B/S weight 0%"); a raise never is (the agent
  check brings it), and a weight push leaves a DOWN server DOWN.
Timings are measured in bench/ (bench/impact.py), never asserted here.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

import cluster as cl
import fake_runtime_api as fake

WATCHED = {"pg": {"data_directory": "@datadir", "poll_interval_ms": "5000", "stale_after_ms": "60000"}}


def ctl(cluster, i, *args):
    r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(cluster.agents[i].ini), *args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    return r.returncode, r.stdout.decode(errors="replace")


@pytest.mark.cluster_conf(common=WATCHED, replicas=1, haproxy=False)
def test_watched_shutdowns(cluster):
    """Smart and fast shutdowns of a replica are down at once, as pg-stopping."""
    c = cluster
    r, a = c.pg[1], c.agents[1]
    assert a.ask("replica").startswith("up"), a.ask("replica")

    # a smart shutdown: PostgreSQL keeps running (and would keep our session) until every client has left
    seen = []
    r.proc.send_signal(signal.SIGTERM)  # smart
    cl.wait_until(lambda: seen.append(a.ask("replica")) or seen[-1] == "down #pg-stopping", 5,
                  interval=0.002, desc="the replica down as pg-stopping after a smart shutdown began")
    try:
        r.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("the smart shutdown did not complete: pgcheckd kept its session")
    assert a.ask("replica") == "down #pg-stopping"
    r.start()
    cl.wait_until(lambda: a.ask("replica").startswith("up"), 15, desc="the replica up again after its restart")

    # a fast shutdown: down as stopping (without the watch: pg-unreachable once the session ends)
    r.stop("fast")
    assert a.ask("replica") == "down #pg-stopping"
    r.start()
    cl.wait_until(lambda: a.ask("replica").startswith("up"), 15, desc="the replica up again after its restart")

    # the replica rebuilt: its data directory removed and made anew; the new one is watched, it comes back
    r.stop("fast")
    shutil.rmtree(r.datadir)
    c.pg[0].sql("SELECT pg_drop_replication_slot(%s)", (r.name,))
    r.basebackup_from(c.pg[0])
    r.start()
    cl.wait_until(lambda: a.ask("replica").startswith("up"), 15, desc="the rebuilt replica up again")


@pytest.mark.cluster_conf(common=cl.merge_conf(WATCHED, {"pg": {"poll_interval_ms": "200",
                                                                "reconnect_max_ms": "60000"}}),
                          replicas=1, haproxy=False)
def test_a_restarted_server_is_sampled_once_it_accepts_not_at_the_end_of_the_backoff(cluster, report):
    """A server whose start-up takes seconds (crash recovery, a slow restore_command; here each archive
    fetch waits 3 s) refuses connections ("starting up") meanwhile, and pgcheckd's reconnects back off;
    postmaster.pid saying 'standby' (or 'ready') starts a connection at once, so the node is sampled as
    soon as it accepts connections, not at the next attempt of the backoff (measured: a 9.1 s start-up,
    sampled 3.60 s after it accepted before this, 0.00 s after)."""
    c = cluster
    r, a = c.pg[1], c.agents[1]
    r.stop("fast")
    with open(r.datadir / "postgresql.auto.conf", "a") as f:
        f.write("restore_command = 'sleep 3; false'\n")
    t_start = time.monotonic()
    r.start(timeout=90)
    t0 = time.monotonic()
    # 'health': sampled again (as a replica it may still be down, not streaming while restore_command runs)
    cl.wait_until(lambda: a.ask("health") == "up 100%", 15, interval=0.02, desc="the restarted replica sampled")
    took = time.monotonic() - t0
    report(f"restarted replica (start-up {t0 - t_start:.1f} s) sampled {took:.2f} s after it accepted connections")
    assert took < 1.5, f"sampled only {took:.2f} s after the replica accepted connections: at the end of a backoff"


@pytest.mark.cluster_conf(replicas=1, haproxy=False)
def test_a_data_directory_that_is_not_the_servers_is_named_and_not_watched(cluster):
    """A [pg] data_directory that is not the server's data directory (none at all, or another cluster's):
    its missing postmaster.pid must not read as a shutdown. pgcheckd compares the directory's pg_control
    with the server's system identifier at the first good sample, says which it is, and polls alone."""
    c = cluster
    a = c.agents[1]
    sysid = c.pg[1].sql1("SELECT system_identifier FROM pg_control_system()")
    empty = c.tmp / "not-a-data-directory"
    other = c.tmp / "another-cluster"
    empty.mkdir()
    (other / "global").mkdir(parents=True)
    (other / "global" / "pg_control").write_bytes(((sysid + 1) % 2**64).to_bytes(8, "little") + bytes(8184))
    os.chmod(c.tmp, 0o755)
    for d in (empty, other):
        os.chmod(d, 0o755)
    os.chmod(other / "global", 0o755)
    for d, said in ((empty, "has no readable global/pg_control"), (other, "is another cluster's (system identifier")):
        a.write_conf({"pg": {"data_directory": str(d)}})
        a.sighup()
        cl.wait_until(lambda d=d, said=said: f"[pg] data_directory {d} {said}" in a.log(), 5,
                      desc=f"pgcheckd to say that {d.name} is not the server's")
        answers = [a.ask("replica") for _ in range(10)]
        assert all(x.startswith("up") for x in answers), answers
    # its own directory again: watched, and a shutdown is seen as such
    a.write_conf({"pg": {"data_directory": str(c.pg[1].datadir)}})
    a.sighup()
    cl.wait_until(lambda: f"watching {c.pg[1].datadir}" in a.log(), 5)
    c.pg[1].stop("fast")
    assert a.ask("replica") == "down #pg-stopping"


@pytest.mark.cluster_conf(common=cl.merge_conf(WATCHED, {"pg": {"poll_interval_ms": "60000",
                                                                "stale_after_ms": "600000"}}),
                          replicas=1, haproxy=False)
def test_watched_promotion(cluster):
    """A promotion, with a sample a minute: the end of recovery starts one at once."""
    c = cluster
    p, pa = c.pg[1], c.agents[1]
    assert pa.ask("primary") == "down #is-replica"
    p.promote()
    cl.wait_until(lambda: pa.ask("primary") == "up 100%", 5, interval=0.01,
                  desc="the promoted replica up as primary well before its next poll (a minute)")
    assert pa.ask("replica") == "down #is-primary"


def _push_conf(c, i, apis, servers):
    a = c.agents[i]
    a.write_conf({"haproxy": {"runtime_api": ",".join(apis), "push_servers": servers, "timeout_ms": "300",
                              "advertise_addr": "127.0.0.1", "advertise_pg_port": str(c.pg[i].port)}})
    a.sighup()


PUSH_RE = re.compile(r"^(show servers state \S+|set server \S+/\S+ (health|agent) down)$")


def test_push_takes_out_and_never_brings_in(cluster):
    c = cluster
    api = fake.SlowApi(delay=0.0, backends=("be_replicas",))
    try:
        real = f"127.0.0.1:{c.haproxy.api_port}"
        _push_conf(c, 2, [real, api.addr], "be_replicas/node3:replica, be_primary/node3:primary")
        time.sleep(0.3)  # the reload is applied on the loop's next turn
        n0 = len(api.sent())
        assert ctl(c, 2, "ctl", "maint") == (0, "ok maint\n")
        cl.wait_until(lambda: any(l == "set server be_replicas/node3 health down" for _, l in api.sent()[n0:]), 5,
                      desc="the push to the fake runtime API")
        cl.wait_until(lambda: "changed from CLI" in c.haproxy.log(), 5, desc="HAProxy told by the push")
        assert c.haproxy.status("be_replicas", "node3").startswith("DOWN")
        # not unfit as primary before (a replica): nothing pushed for be_primary
        assert not any("be_primary" in l for _, l in api.sent())
        n1 = len(api.sent())
        assert ctl(c, 2, "ctl", "ready") == (0, "ok ready\n")
        cl.wait_until(lambda: c.haproxy.status("be_replicas", "node3").startswith("UP"), 5,
                      desc="HAProxy's own check bringing node3 back")
        time.sleep(0.3)
        assert not [l for _, l in api.sent()[n1:] if not l.startswith("show servers state")], \
            "a push on the way up"
        bad = [l for _, l in api.sent() if not PUSH_RE.match(l)]
        assert not bad, f"pushes other than taking out: {bad}"
    finally:
        api.close()


def test_push_that_fails_falls_back_to_the_check(cluster):
    c = cluster
    hung = fake.SlowApi(delay=5.0, backends=("be_replicas",))
    dead_port = cl.free_ports(1)[0]
    try:
        real = f"127.0.0.1:{c.haproxy.api_port}"
        _push_conf(c, 2, [f"127.0.0.1:{dead_port}", hung.addr, real], "be_replicas/node3:replica")
        time.sleep(0.5)
        assert ctl(c, 2, "ctl", "maint") == (0, "ok maint\n")
        # the checks answer at once while the pushes to the dead and the hung API are retried
        t0 = time.monotonic()
        answers = []
        while time.monotonic() - t0 < 1.0:
            answers.append(c.agents[2].ask("replica", timeout=0.5))
        assert set(answers) == {"down #maint"}, set(answers)
        # the real HAProxy got its push (its own thread) and is DOWN anyway
        cl.wait_until(lambda: c.haproxy.status("be_replicas", "node3").startswith("DOWN"), 5,
                      desc="node3 DOWN in be_replicas")
        cl.wait_until(lambda: c.agents[2].log().count(f"haproxy 127.0.0.1:{dead_port}: cannot take") == 1, 5,
                      desc="the failed push logged")
        time.sleep(1.0)  # several retries with backoff
        log = c.agents[2].log()
        assert log.count(f"haproxy 127.0.0.1:{dead_port}: cannot take") == 1, "logged more than once per episode"
        assert ctl(c, 2, "ctl", "ready") == (0, "ok ready\n")
        cl.wait_until(lambda: c.haproxy.status("be_replicas", "node3").startswith("UP"), 5,
                      desc="node3 back UP through HAProxy's check")
    finally:
        hung.close()


UNLOADED = {"weight": {"load_low_per_cpu": "500", "load_high_per_cpu": "1000"}}  # a busy CI host: no load drops


@pytest.mark.cluster_conf(common=UNLOADED, haproxy=False)
def test_weight_push_lowers_at_once_and_never_raises(cluster):
    """The agent checks of be_replicas are disabled here once the servers are up (a long agent-inter
    would not do: HAProxy spreads the first health checks over the longest interval), so only a push can
    explain a weight of 0 after 'ctl drain'; 'ctl ready' pushes nothing (the weight stays 0 until the agent
    is enabled and asked again). node3's health check goes to a dead port: DOWN, and its weight push
    (drained too) leaves it DOWN."""
    c = cluster
    dead = cl.free_ports(1)[0]
    a3 = c.ports["agent"][2]

    def edit(text):
        line = f"server node3 127.0.0.1:{c.ports['pg'][2]} port {a3} agent-port {a3}"
        assert text.count(line) == 3, "conf/haproxy.cfg's node3 lines changed"
        i = text.index("\nbackend be_replicas")
        j = text.index("\nbackend", i + 1)  # be_read_any: left as it is
        return text[:i] + text[i:j].replace(line, f"server node3 127.0.0.1:{c.ports['pg'][2]} port {dead} "
                                                   f"agent-port {a3}") + text[j:]
    hap = c.extra_haproxy(name="haproxy", edit=edit)

    def uweight(server):
        return next(int(r["srv_uweight"]) for r in hap.show_servers_state()
                    if r["be_name"] == "be_replicas" and r["srv_name"] == server)

    cl.wait_until(lambda: hap.status("be_replicas", "node2").startswith("UP")
                  and hap.status("be_replicas", "node3").startswith("DOWN"), 10,
                  desc="node2 UP and node3 DOWN (its check on a dead port) in be_replicas")
    for server in ("node2", "node3"):
        assert hap.api(f"disable agent be_replicas/{server}").strip() == ""
        assert uweight(server) == 100
    api = f"127.0.0.1:{hap.api_port}"
    _push_conf(c, 1, [api], "be_replicas/node2:replica")
    _push_conf(c, 2, [api], "be_replicas/node3:replica")
    time.sleep(0.3)  # the reload is applied on the loop's next turn

    assert ctl(c, 1, "ctl", "drain") == (0, "ok drain\n")
    assert c.agents[1].ask("replica") == "up 0%"
    cl.wait_until(lambda: uweight("node2") == 0, 3, interval=0.01, desc="node2's weight 0 in be_replicas")
    assert "lowered this node's weight in be_replicas/node2 from 100 to 0% of 100" in c.agents[1].log()
    assert hap.status("be_replicas", "node2").startswith("UP")  # drained, not taken out

    # ready: up 100% again, and nothing pushed: HAProxy keeps 0 until its agent check asks
    assert ctl(c, 1, "ctl", "ready") == (0, "ok ready\n")
    assert c.agents[1].ask("replica") == "up 100%"
    time.sleep(1.0)
    assert uweight("node2") == 0, "a weight raised by push"
    hap.api("enable agent be_replicas/node2")
    cl.wait_until(lambda: uweight("node2") == 100, 5, interval=0.02, desc="the agent check raising node2's weight")

    # a DOWN server: its weight is lowered, and it stays DOWN
    assert ctl(c, 2, "ctl", "drain") == (0, "ok drain\n")
    cl.wait_until(lambda: uweight("node3") == 0, 3, interval=0.01, desc="node3's weight 0 in be_replicas")
    assert hap.status("be_replicas", "node3").startswith("DOWN")
    time.sleep(0.5)
    assert hap.status("be_replicas", "node3").startswith("DOWN")
    # one push each: never a raise, never a health push (both stayed fit)
    for i in (1, 2):
        log = c.agents[i].log()
        assert log.count("lowered this node's weight") == 1, log
        assert "took this node out" not in log, log


def test_promotion_alerts_the_old_primary():
    """Item 3: the promoted node's pgcheckd alerts its peers; the old primary reads it back at once and
    fences itself. Its own reads of the peers are 60 s apart here: only the alert can explain the fence."""
    c = cl.Cluster(replicas=1)
    ports = c.ports["agent"]
    c.pgcheckd_conf = {i: {"peers": {"addresses": f"127.0.0.1:{ports[1 - i]}", "interval_ms": "60000",
                                     "fresh_ms": "600000"}} for i in range(2)}
    try:
        c.start(haproxy=False)
        old = c.agents[0]
        cl.wait_until(lambda: old.ask("primary") == "up 100%", 5, desc="node1 up as primary")
        c.pg[1].promote()
        cl.wait_until(lambda: c.agents[1].ask("primary") == "up 100%", 5, desc="node2 up as primary")
        cl.wait_until(lambda: old.ask("primary").startswith("down #fenced newer primary"), 5,
                      desc="the old primary fenced by node2's alert (its own next read is a minute away)")
    finally:
        c.close()
