"""Never two write targets: fencing from what the peers' pgcheckd say, against real PostgreSQL and HAProxy.

A real split brain (a replica promoted while the old primary keeps running), two promotions at once,
a replica left behind on the old timeline, unreachable peers and an unrelated cluster in the peer list.
"""

import json
import subprocess
import threading
import time

import psycopg2

import cluster as cl
from fake_peer import FakePeer


def peered_cluster(replicas=2, extra_peers=None, push=False):
    """A cluster whose pgcheckd list each other as peers (plus extra_peers), admin sockets in the temp dir;
    with push, each takes itself out of HAProxy's backends at once when unfit (as the README advises)."""
    c = cl.Cluster(replicas=replicas)
    ports = c.ports["agent"]
    conf = {}
    for i in range(c.n):
        others = [f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i] + list(extra_peers or [])
        conf[i] = {"peers": {"addresses": ", ".join(others)}, "admin": {"socket": str(c.tmp / f"admin{i}.sock")}}
        if push:
            conf[i]["haproxy"] = {"runtime_api": f"127.0.0.1:{c.ports['api']}",
                                  "push_servers": f"be_primary/node{i + 1}:primary, be_replicas/node{i + 1}:replica"}
    c.pgcheckd_conf = conf
    c.start()
    return c


def ctl(c, i, *args):
    r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(c.agents[i].ini), *args], capture_output=True, timeout=10)
    return r.returncode, r.stdout.decode()


def status(c, i):
    return json.loads(ctl(c, i, "ctl", "status")[1])


class Writer(threading.Thread):
    """Writes one row per new connection through the write frontend until stopped (bounded)."""

    def __init__(self, c, seconds):
        super().__init__(daemon=True)
        self.c, self.seconds = c, seconds
        self.ok, self.failed = 0, 0
        self.stop_flag = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.seconds
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            try:
                self.c.through("write", "INSERT INTO writes (port) VALUES (inet_server_port())", timeout=1)
                self.ok += 1
            except psycopg2.Error:
                self.failed += 1
                time.sleep(0.005)


def test_split_brain_old_primary_is_fenced_and_gets_no_writes(report):
    """A replica promoted while the old primary runs on: the old one is fenced and pushed out of HAProxy,
    the new one waits for that (handover), so that at no sample of HAProxy's state (every 20 ms) are
    two servers UP in the write backend; no write reaches the old one once HAProxy shows it DOWN."""
    c = peered_cluster(push=True)
    routing, stop_sampling = [], threading.Event()

    def sample_routing():
        while not stop_sampling.is_set():
            try:
                st = c.haproxy.states("be_primary")
                routing.append(sorted(n for n, (s, _) in st.items() if s.startswith("UP")))
            except Exception:  # noqa: BLE001 - a missed sample is not a result
                pass
            time.sleep(0.02)
    sampler = threading.Thread(target=sample_routing, daemon=True)
    try:
        c.through("write", "CREATE TABLE writes (port int, at timestamptz DEFAULT clock_timestamp())")
        cl.wait_until(lambda: c.pg[2].sql1("SELECT count(*) FROM pg_class WHERE relname = 'writes'") == 1, 10)
        writer = Writer(c, seconds=30)
        writer.start()
        sampler.start()
        time.sleep(0.5)
        c.pg[1].promote()  # node1 keeps running: two primaries in PostgreSQL's eyes
        t_promoted = time.monotonic()
        fenced = cl.wait_until(lambda: c.agents[0].ask("primary").startswith("down #fenced") and
                               c.agents[0].ask("primary"), 5, interval=0.01, desc="node1 fenced")
        t_fenced = time.monotonic()
        assert "newer primary on timeline 2" in fenced, fenced
        # HAProxy takes node1 out; from the moment it shows DOWN, not one write may reach node1
        cl.wait_until(lambda: c.haproxy.status("be_primary", "node1").startswith("DOWN"), 5, interval=0.01)
        down_at = c.pg[0].sql1("SELECT clock_timestamp()")
        # node3 still follows node1: a fork once it replays what node1 took after node2's floor (a write
        # straight to node1, fenced for HAProxy but writable: without it node3 may be only stale, and up)
        c.pg[0].sql("INSERT INTO writes (port) VALUES (0)")
        c.wait_routing(primary=1, replicas=[], timeout=10)
        ok_before = writer.ok
        cl.wait_until(lambda: writer.ok >= ok_before + 20, 10, desc="writes to continue on node2")
        writer.stop_flag.set()
        writer.join(10)
        stop_sampling.set()
        sampler.join(5)
        late = c.pg[0].sql1("SELECT count(*) FROM writes WHERE at > %s AND port <> 0", (down_at,))  # 0: ours
        on_node1_after_promote = c.pg[0].sql1(
            "SELECT count(*) FROM writes WHERE port <> 0 AND at > clock_timestamp() - %s * interval '1 second'",
            (time.monotonic() - t_promoted,))
        on_node2 = c.pg[1].sql1("SELECT count(*) FROM writes WHERE port = %s", (c.pg[1].port,))
        report(f"split brain: node1 fenced {1000 * (t_fenced - t_promoted):.0f} ms after pg_ctl promote returned; "
               f"{on_node1_after_promote} writes reached node1 after the promotion, {late} after HAProxy "
               f"marked it down; {on_node2} on node2; writer ok={writer.ok} failed={writer.failed}; "
               f"two servers UP in be_primary in {sum(1 for up in routing if len(up) > 1)} of {len(routing)} samples")
        assert late == 0
        dual = [up for up in routing if len(up) > 1]
        assert routing and not dual, f"two write targets in {len(dual)} of {len(routing)} samples: {dual[:3]}"
        assert on_node2 >= 20
        assert c.agents[2].ask("replica").startswith("down #fork timeline 1 behind 2"), c.agents[2].ask("replica")
        st = status(c, 0)
        assert st["verdicts"]["primary"]["reason"].startswith("fenced")
        assert st["peers"]["fresh"] == 2 and st["peers"]["newest_primary_timeline"] == 2
        assert "refusing writes" in c.agents[0].log()
    finally:
        stop_sampling.set()
        c.close()


def test_two_promotions_at_once_leave_no_write_target_until_released():
    c = peered_cluster()
    try:
        c.pg[0].stop()
        threads = [threading.Thread(target=c.pg[i].promote) for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for i in (1, 2):
            cl.wait_until(lambda i=i: c.agents[i].ask("primary") == "down #fenced split-brain on timeline 2", 5,
                          desc=f"node{i + 1} fenced as split")
        c.wait_routing(primary=None, replicas=[], timeout=5)
        try:
            c.through("write", timeout=2)
            assert False, "a write went through with two primaries"
        except psycopg2.OperationalError:
            pass
        assert ctl(c, 1, "ctl", "release") == (0, "ok release\n")
        assert c.agents[1].ask("primary") == "up 100%"
        assert c.agents[2].ask("primary").startswith("down #fenced split-brain")
        c.wait_routing(primary=1, replicas=[], timeout=5)
        assert c.where("write") == ("node2", False)
        # the other is demoted (stopped): the split is over, the release is no longer needed
        c.pg[2].stop()
        cl.wait_until(lambda: status(c, 1)["peers"]["primaries_on_my_timeline"] == 0, 5)
        assert status(c, 1)["peers"]["released"] is False
        assert c.agents[1].ask("primary") == "up 100%"
    finally:
        c.close()


def test_unreachable_peers_fence_no_one_and_say_so():
    dead = cl.free_ports(2)
    c = cl.Cluster(replicas=1)
    try:
        c.pgcheckd_conf = {0: {"peers": {"addresses": f"127.0.0.1:{dead[0]}, 127.0.0.1:{dead[1]}"},
                               "admin": {"socket": str(c.tmp / "admin0.sock")}}}
        c.start(haproxy=False)
        assert c.agents[0].ask("primary") == "up 100%"
        st = status(c, 0)
        assert st["peers"]["configured"] == 2 and st["peers"]["fresh"] == 0
        assert st["peers"]["note"] == "no peer reachable: fencing inactive"
    finally:
        c.close()


def test_isolation_fencing_is_off_by_default_and_fences_when_on():
    c = cl.Cluster(replicas=0)
    try:
        dead = cl.free_ports(1)[0]
        c.pgcheckd_conf = {0: {"peers": {"addresses": f"127.0.0.1:{dead}", "isolation_fence_ms": "1000"}}}
        c.start(haproxy=False)
        cl.wait_until(lambda: c.agents[0].ask("primary") == "down #fenced isolated", 5, desc="isolated")
        c.agents[0].write_conf({"peers": {"isolation_fence_ms": "0"}})
        c.agents[0].sighup()
        cl.wait_until(lambda: c.agents[0].ask("primary") == "up 100%", 5, desc="isolation off after reload")
    finally:
        c.close()


def test_peer_from_another_cluster_is_ignored():
    other = cl.Cluster(replicas=0)
    try:
        other.start(haproxy=False)
        c = cl.Cluster(replicas=1)
        try:
            c.pgcheckd_conf = {0: {"peers": {"addresses": f"127.0.0.1:{c.ports['agent'][1]}, "
                                                          f"127.0.0.1:{other.agents[0].port}"},
                                   "admin": {"socket": str(c.tmp / "admin0.sock")}}}
            c.start(haproxy=False)
            # the other cluster's primary is on timeline 1 too: counted, it would fence ours as a split
            cl.wait_until(lambda: status(c, 0)["peers"]["other_cluster"] == 1, 5, desc="other cluster seen")
            assert c.agents[0].ask("primary") == "up 100%"
            cl.wait_until(lambda: "belongs to another cluster" in c.agents[0].log(), 5, desc="the other cluster logged")
        finally:
            c.close()
    finally:
        other.close()


def test_promoted_primary_waits_until_the_superseded_one_fenced_itself():
    """A promoted node whose peer list holds a primary on the older timeline that still says it takes
    writes answers 'primary' down #handover (HAProxy would see two write targets), alerts it, and is up
    as soon as that peer answers fenced. The old primary is a fake peer here, so that it can be made to
    take its time: a real one fences itself within a peer read of the promotion."""
    c = cl.Cluster(replicas=1)
    fake_port = cl.free_ports(1)[0]
    c.pgcheckd_conf = {1: {"peers": {"addresses": f"127.0.0.1:{fake_port}", "handover_ms": "20000"}}}
    fenced = threading.Event()
    fake = None
    try:
        c.start()
        sysid = c.pg[0].sql1("SELECT system_identifier FROM pg_control_system()")
        fake = FakePeer(fake_port, lambda line: f"state role=primary timeline=1 sysid={sysid} "
                                                f"fenced={1 if fenced.is_set() else 0}\n")
        fake.start()
        cl.wait_until(lambda: c.agents[1].ask("replica").startswith("up"), 10, desc="node2 up as a replica")
        c.pg[1].promote()
        cl.wait_until(lambda: c.agents[1].ask("primary") != "down #is-replica", 5, interval=0.01,
                      desc="node2's promotion seen")
        t0 = time.monotonic()
        answers = []
        while time.monotonic() - t0 < 1.0:
            answers.append(c.agents[1].ask("primary"))
            time.sleep(0.05)
        assert answers and all(a == "down #handover" for a in answers), sorted(set(answers))
        assert any(r.startswith("peer-alert") for r in fake.requests), fake.requests[-5:]
        assert "handover: a peer primary on an older timeline still takes writes" in c.agents[1].log()
        fenced.set()
        cl.wait_until(lambda: c.agents[1].ask("primary") == "up 100%", 3, interval=0.01,
                      desc="up once the superseded primary answers fenced")
        cl.wait_until(lambda: "handover: the superseded primary stepped down" in c.agents[1].log(), 3)
    finally:
        if fake is not None:
            fake.stop()
        c.close()
