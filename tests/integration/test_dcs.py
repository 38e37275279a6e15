"""[dcs] mode = patroni: 'primary' is up only on the node Patroni's leader key in etcd names, and only
while etcd's word is fresh. A real etcd (Debian's etcd-server, one member on loopback ports this module
picks), a real PostgreSQL primary and replica and their real pgcheckd; the leader key is written here
through etcd's JSON gateway, as Patroni writes it (the member name, under a lease). A fake etcd (a small
HTTP server in this file) answers what a broken or hostile one could: pgcheckd keeps answering, the
primary is down, and each episode is logged once.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cluster as cl

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
NAMESPACE = "/patroni-lab/"
SCOPE = "lab"
LEADER_KEY = "/patroni-lab/lab/leader"
# reads every 100 ms, each within 300 ms; what etcd said counts 1 s after its request was sent
DCS_TIMING = {"interval_ms": "100", "timeout_ms": "300", "fresh_ms": "1000"}
WAIT_S = 10  # bound for a change to show (the fresh limit plus a loaded machine's slack)


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    """One etcd member on free loopback ports, its data in tmp; stop() and start() keep the data."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port, self.peer_port = cl.free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.logfile = tmp / "etcd.log"

    def start(self, timeout=30):
        peer = f"http://127.0.0.1:{self.peer_port}"
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                [ETCD, "--name", "dcs0", "--data-dir", str(self.tmp / "etcd-data"),
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"dcs0={peer}", "--log-level", "warn", "--logger", "zap"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise cl.ClusterError(f"etcd exited with {self.proc.returncode}: {self.logfile.read_text()[-2000:]}")
            try:
                return self.call("/v3/kv/range", {"key": b64("/")}) is not None
            except OSError:
                return False
        cl.wait_until(ready, timeout, interval=0.1, desc="etcd to answer")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def set_leader(self, name):
        """Write the leader key as Patroni does: the member name, attached to a lease (ttl 30 s)."""
        lease = self.call("/v3/lease/grant", {"TTL": 30})["ID"]
        self.call("/v3/kv/put", {"key": b64(LEADER_KEY), "value": b64(name), "lease": lease})

    def delete_leader(self):
        self.call("/v3/kv/deleterange", {"key": b64(LEADER_KEY)})


def dcs_conf(endpoints, name):
    return {"dcs": {"mode": "patroni", "endpoints": endpoints, "scope": SCOPE, "namespace": NAMESPACE,
                    "name": name, **DCS_TIMING}}


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    e = Etcd(tmp_path_factory.mktemp("etcd")).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def dcs_cluster(etcd):
    """Primary pg0 and replica pg1, each pgcheckd in patroni mode with its member name; the first endpoint
    listed is dead (nothing listens there), so every read also shows that the client fails over."""
    dead = cl.free_ports(1)[0]
    endpoints = f"http://127.0.0.1:{dead}, {etcd.url}"
    c = cl.Cluster(replicas=1, pgcheckd_conf={0: dcs_conf(endpoints, "pg0"), 1: dcs_conf(endpoints, "pg1")})
    try:
        c.start(haproxy=False)
        yield c
    finally:
        c.close()


def wait_answer(agent, req, pred, desc):
    """Wait until the agent's answer to req satisfies pred; every answer on the way is a complete line."""
    seen = []

    def ok():
        a = agent.ask(req)
        assert not a.startswith("<incomplete"), a
        seen.append(a)
        return pred(a)
    try:
        cl.wait_until(ok, WAIT_S, interval=0.05, desc=desc)
    except TimeoutError:
        raise AssertionError(f"{desc}: last answers {seen[-5:]}; log:\n{agent.log(40)}") from None
    return seen[-1]


def http_get(agent, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}{path}", timeout=5) as r:
        return r.read().decode()


def status(agent):
    return json.loads(http_get(agent, "/status"))


def test_leader_key_names_this_node_primary_up(etcd, dcs_cluster):
    etcd.set_leader("pg0")
    primary = dcs_cluster.agents[0]
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up once the leader key names pg0")
    st = status(primary)["dcs"]
    assert st["leader"] == "pg0" and st["leader_is_me"] is True and st["endpoint"] == etcd.url, st
    assert st["heard"] is True and 0 <= st["age_ms"] <= 1000
    metrics = http_get(primary, "/metrics")
    assert "pgcheckd_dcs_leader_is_me 1" in metrics
    ctl = subprocess.run([cl.PGCHECKD_BIN, "-c", str(primary.ini), "ctl", "status"], capture_output=True,
                         timeout=10, stdin=subprocess.DEVNULL)
    assert b'"leader":"pg0"' in ctl.stdout, ctl


def test_leader_key_names_another_node_primary_down_not_leader(etcd, dcs_cluster):
    primary, replica = dcs_cluster.agents
    etcd.set_leader("pg0")
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up")
    etcd.set_leader("pg7")
    wait_answer(primary, "primary", lambda a: a == "down #dcs-not-leader", "primary down #dcs-not-leader")
    assert primary.ask("health").startswith("up")
    etcd.delete_leader()  # no leader at all: not this node either
    time.sleep(0.3)
    assert primary.ask("primary") == "down #dcs-not-leader"
    assert status(primary)["dcs"]["leader"] is None
    etcd.set_leader("pg0")
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up again")
    # the transitions are logged once each, not per read
    log = primary.log()
    assert log.count("leader key of scope lab names pg7 (not this node)") == 1, log[-3000:]


def test_replica_is_unaffected_by_the_leader_key(etcd, dcs_cluster):
    replica = dcs_cluster.agents[1]
    etcd.set_leader("pg1")  # even named as the leader, a replica is no write target
    wait_answer(replica, "replica", lambda a: a.startswith("up"), "replica up")
    time.sleep(0.3)
    assert replica.ask("primary") == "down #is-replica"
    etcd.set_leader("pg0")
    assert replica.ask("replica").startswith("up")


def test_etcd_stopped_primary_down_unreachable_then_back(etcd, dcs_cluster):
    primary, replica = dcs_cluster.agents
    etcd.set_leader("pg0")
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up")
    before = len(primary.log())
    etcd.stop()
    try:
        wait_answer(primary, "primary", lambda a: a == "down #dcs-unreachable", "primary down once etcd is lost")
        assert replica.ask("replica").startswith("up")  # replicas answer as without a DCS
        time.sleep(0.5)  # several failed reads more
        assert primary.ask("primary") == "down #dcs-unreachable"
        assert status(primary)["dcs"]["last_error"] == "connect-failed"
    finally:
        etcd.start()
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up once etcd is back")
    # one episode: one error line and one recovery line, however many reads failed in between
    episode = primary.log()[before:]
    assert episode.count("connect-failed") == 1 and episode.count("answers again") == 1, episode


class FakeEtcd:
    """An HTTP server on loopback that answers /v3/kv/range as told by .mode."""

    GOOD = {"header": {"revision": "5"}, "kvs": [{"key": b64(LEADER_KEY), "value": b64("pg0"), "lease": "7"}],
            "count": "1"}

    def __init__(self):
        fake = self
        self.mode = "good"
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                fake.requests += 1
                try:
                    fake.answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def send(self, h, body, status=200, length=True):
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        if length:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def answer(self, h):
        good = json.dumps(self.GOOD).encode()
        m = self.mode
        if m == "good":
            self.send(h, good)
        elif m == "truncated":  # half an answer, its length said as the half's
            self.send(h, good[:len(good) // 2])
        elif m == "cut-off":  # the length of the whole, half of it sent, then the connection closes
            h.send_response(200)
            h.send_header("Content-Length", str(len(good)))
            h.end_headers()
            h.wfile.write(good[:len(good) // 2])
        elif m == "huge":  # 8 MB of a valid-looking answer, no length: read until a cap or the close
            h.send_response(200)
            h.end_headers()
            h.wfile.write(b'{"header":{},"kvs":[{"key":"' + b"QUFB" * 64)
            for _ in range(512):
                h.wfile.write(b"QUFB" * 4096)
        elif m == "huge-declared":
            h.send_response(200)
            h.send_header("Content-Length", str(1 << 30))
            h.end_headers()
            h.wfile.write(b" " * 65536)
        elif m == "malformed":
            self.send(h, b'{"header":{"revision":"5"},"kvs":[{"key":"' + b64(LEADER_KEY).encode() + b'",,}]}')
        elif m == "wrong-types":
            self.send(h, json.dumps({"header": {}, "kvs": [{"key": b64(LEADER_KEY), "value": ["pg0"]}]}).encode())
        elif m == "wrong-key":  # names this node, but under another key
            self.send(h, json.dumps({"header": {}, "kvs": [{"key": b64("/patroni-lab/lab/members/pg0"),
                                                            "value": b64("pg0")}]}).encode())
        elif m == "status-500":
            self.send(h, good, status=500)
        elif m == "slow":  # the whole answer, too late
            time.sleep(2)
            self.send(h, good)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


HOSTILE = ["truncated", "cut-off", "huge", "huge-declared", "malformed", "wrong-types", "wrong-key", "status-500",
           "slow"]


def test_hostile_etcd_answers_keep_agent_answering_and_primary_down(dcs_cluster):
    fake = FakeEtcd()
    pg0 = dcs_cluster.pg[0]
    agent = cl.Pgcheckd(dcs_cluster, pg0, cl.free_ports(1)[0], conf=dcs_conf(fake.url, "pg0"), name="pgcheckd-fake")
    try:
        agent.start()
        for mode in HOSTILE:
            fake.mode = "good"
            wait_answer(agent, "primary", lambda a: a.startswith("up"), f"up before {mode}")
            fake.mode = mode
            wait_answer(agent, "primary", lambda a: a == "down #dcs-unreachable", f"down with a {mode} answer")
            t0 = time.monotonic()
            for _ in range(5):  # checks are answered meanwhile, at once
                assert agent.ask("health", timeout=1.0).startswith("up")
            assert time.monotonic() - t0 < 5
        fake.mode = "good"
        wait_answer(agent, "primary", lambda a: a.startswith("up"), "up at the end")
        log = agent.log()
        errors = [ln for ln in log.splitlines() if "dcs: etcd" in ln and "fresh_ms" in ln]
        # one line per episode, naming what was wrong, however many reads failed
        assert len(errors) == len(HOSTILE), "\n".join(errors)
        for line, kind in zip(errors, ["malformed", "transport", "too-large", "too-large", "malformed", "wrong-type",
                                       "wrong-key", "http-status", "timeout"]):
            assert f": {kind} (" in line, (kind, line)
        assert fake.requests > 3 * len(HOSTILE)
        assert agent.running()
    finally:
        agent.stop()
        fake.close()


def test_reload_with_bad_dcs_keeps_running_config(etcd, dcs_cluster):
    etcd.set_leader("pg0")
    agent = cl.Pgcheckd(dcs_cluster, dcs_cluster.pg[0], cl.free_ports(1)[0], conf=dcs_conf(etcd.url, "pg0"),
                        name="pgcheckd-reload")
    try:
        agent.start()
        wait_answer(agent, "primary", lambda a: a.startswith("up"), "up")
        good = agent.ini.read_text()
        bad = good.replace(f"endpoints = {etcd.url}", "endpoints = 127.0.0.1:2379")
        assert bad != good
        agent.write_conf(text=bad)
        line = bad.splitlines().index("endpoints = 127.0.0.1:2379") + 1
        rc, _, err = agent.check_config()
        assert rc == 2 and f"{agent.ini}:{line}: [dcs] endpoints: '127.0.0.1:2379' is not an http" in err, err
        agent.sighup()
        cl.wait_until(lambda: "reload failed, keeping the running configuration" in agent.log(), WAIT_S,
                      desc="the reload to be refused")
        time.sleep(0.3)
        assert agent.ask("primary").startswith("up")
        # a good reload applies: another member name is not the leader
        agent.write_conf(text=good.replace("name = pg0", "name = pg5"))
        agent.sighup()
        wait_answer(agent, "primary", lambda a: a == "down #dcs-not-leader", "down after the reload")
        assert agent.running()
    finally:
        agent.stop()


# A real Patroni 3 cluster (Debian's patroni) on the module's etcd: two members with their own PostgreSQL,
# one pgcheckd each in patroni mode. Patroni's timings are its minimums, so that a switchover is quick.
PATRONI = shutil.which("patroni") or "/usr/bin/patroni"
PATRONICTL = shutil.which("patronictl") or "/usr/bin/patronictl"


class PatroniCluster:
    def __init__(self, etcd):
        self.etcd = etcd
        self.tmp = Path(tempfile.mkdtemp(prefix="pgcheckd-patroni-"))
        os.chmod(self.tmp, 0o755)
        ports = cl.free_ports(4)
        self.rest, self.pg_ports = ports[0:2], ports[2:4]
        self.procs = []
        self.agents = []
        # what cl.Pgcheckd needs of a cluster
        self._procs, self._pgcheckds = [], []

    def node_dir(self, i):
        return self.tmp / f"p{i + 1}"

    def config(self, i):
        d = self.node_dir(i)
        return f"""scope: it
namespace: /pgcheckd-it/
name: p{i + 1}
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:{self.rest[i]}
  connect_address: 127.0.0.1:{self.rest[i]}
etcd3:
  hosts: 127.0.0.1:{self.etcd.port}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: 50
        wal_level: replica
        hot_standby: "on"
  initdb:
    - encoding: UTF8
    - locale: C
    - auth: trust
postgresql:
  listen: 127.0.0.1:{self.pg_ports[i]}
  connect_address: 127.0.0.1:{self.pg_ports[i]}
  data_dir: {d / 'data'}
  bin_dir: {cl.PG_BIN}
  pgpass: {d / 'pgpass'}
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: '{d}'
    fsync: "off"
    shared_buffers: 16MB
  pg_hba:
    - local all all trust
    - local replication all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
"""

    def rest_status(self, i, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.rest[i]}{path}", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def start(self, timeout=90):
        uid, gid = cl._pg_ids()
        env = cl._clean_env()
        env["HOME"] = str(self.tmp)
        for i in range(2):
            d = self.node_dir(i)
            d.mkdir(mode=0o700)
            (d / "patroni.yml").write_text(self.config(i))
            for p in (d, d / "patroni.yml"):
                os.chown(p, uid, gid)
        for i in range(2):
            with open(self.tmp / f"patroni-p{i + 1}.log", "ab") as log:
                self.procs.append(subprocess.Popen(
                    [PATRONI, str(self.node_dir(i) / "patroni.yml")], stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, env=env, **cl._pg_popen_kw()))
            want = "/primary" if i == 0 else "/replica"
            cl.wait_until(lambda: self.rest_status(i, want) == 200, timeout, interval=0.2,
                          desc=f"Patroni p{i + 1} at {want}")
        for i in range(2):
            pg = types.SimpleNamespace(sockdir=self.node_dir(i), port=self.pg_ports[i], name=f"p{i + 1}")
            a = cl.Pgcheckd(self, pg, cl.free_ports(1)[0], conf=dcs_conf(self.etcd.url, f"p{i + 1}"),
                            name=f"pgcheckd-p{i + 1}")
            a.conf["dcs"].update({"scope": "it", "namespace": "/pgcheckd-it/"})
            a.write_conf()
            self.agents.append(a.start())
        return self

    def close(self):
        for a in self.agents:
            a.stop()
        for p in reversed(self.procs):
            kids = cl.descendants(p.pid) if p.poll() is None else []
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
            for k in kids:  # a postmaster Patroni left behind
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for i in range(2):  # one Patroni was starting when it was stopped: its postmaster, by its pid file
            try:
                pid = int((self.node_dir(i) / "data" / "postmaster.pid").read_text().split()[0])
                if str(self.node_dir(i)).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue  # not ours (it exited, and the pid was taken since)
                os.kill(pid, signal.SIGQUIT)
                cl.wait_until(lambda: not cl.pid_alive(pid), 10, desc="the postmaster to exit")
            except (OSError, ValueError, IndexError, TimeoutError):
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self):
        out = []
        for f in sorted(self.tmp.glob("*.log")):
            out.append(f"----- {f.name} -----\n{f.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)


def test_patroni_switchover_primary_follows_the_leader_key(etcd):
    pc = PatroniCluster(etcd)
    try:
        pc.start()
        p1, p2 = pc.agents
        wait_answer(p1, "primary", lambda a: a.startswith("up"), "p1 (Patroni's leader) up as primary")
        wait_answer(p2, "replica", lambda a: a.startswith("up"), "p2 up as replica")
        assert p2.ask("primary") == "down #is-replica"
        sw = subprocess.Popen([PATRONICTL, "-c", str(pc.node_dir(0) / "patroni.yml"), "switchover", "--leader",
                               "p1", "--candidate", "p2", "--force"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=cl._clean_env())
        both = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # never two write targets, sampled every 20 ms
            a1, a2 = p1.ask("primary"), p2.ask("primary")
            if a1.startswith("up") and a2.startswith("up"):
                both.append((a1, a2))
            if a2.startswith("up") and not a1.startswith("up"):
                break
            time.sleep(0.02)
        out = sw.communicate(timeout=60)[0].decode(errors="replace")
        assert not both, both
        assert p2.ask("primary").startswith("up"), (out, p2.log(30))
        assert p1.ask("primary").startswith("down"), p1.log(30)  # restarting as a replica, then is-replica
        assert "names p2 (this node)" in p2.log() and "names p2 (not this node)" in p1.log()
    except Exception:
        print(pc.logs())
        raise
    finally:
        pc.close()


# [dcs] mode = lease: pgcheckd itself holds the key under a lease of 2 s, 'primary' down 1 s before it
# can expire (by the sending of the last grant or keepalive)
LEASE_KEY = "/pgcheckd-lease/it/leader"


def lease_conf(name):
    return {"dcs": {"mode": "lease", "scope": "it", "namespace": "/pgcheckd-lease/", "name": name,
                    "lease_ttl_s": "2", "lease_margin_ms": "1000", "interval_ms": "100", "timeout_ms": "300"}}


def read_key(etcd, key):
    kvs = etcd.call("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
    if not kvs:
        return None, 0
    return base64.b64decode(kvs[0].get("value", "")).decode(), int(kvs[0].get("lease", 0))


@pytest.fixture(scope="module")
def lease_cluster(etcd):
    for a in (LEASE_KEY,):
        etcd.call("/v3/kv/deleterange", {"key": b64(a)})
    c = cl.Cluster(replicas=1, pgcheckd_conf={0: merge_endpoint(lease_conf("pg0"), etcd),
                                              1: merge_endpoint(lease_conf("pg1"), etcd)})
    try:
        c.start(haproxy=False)
        yield c
    finally:
        c.close()


def merge_endpoint(conf, etcd):
    conf["dcs"]["endpoints"] = etcd.url
    return conf


def test_lease_primary_takes_the_key_and_answers_up(etcd, lease_cluster):
    primary, replica = lease_cluster.agents
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up once it holds the key")
    holder, lease = read_key(etcd, LEASE_KEY)
    assert holder == "pg0" and lease != 0
    st = status(primary)["dcs"]
    assert st["lease_held"] is True and 0 < st["lease_left_ms"] <= 2000, st
    assert "pgcheckd_dcs_lease_left_seconds " in http_get(primary, "/metrics")
    wait_answer(replica, "replica", lambda a: a.startswith("up"), "replica up")
    assert replica.ask("primary") == "down #is-replica"
    assert status(replica)["dcs"]["lease_held"] is False
    assert "dcs: this node holds the key (lease)" in primary.log()


def test_lease_held_by_another_node_primary_down_until_it_is_gone(etcd, lease_cluster):
    primary = lease_cluster.agents[0]
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up")
    primary.kill()  # no revoke: its lease runs out by itself
    other = etcd.call("/v3/lease/grant", {"TTL": 30})["ID"]
    etcd.call("/v3/kv/put", {"key": b64(LEASE_KEY), "value": b64("pg9"), "lease": other})
    primary.start()
    wait_answer(primary, "primary", lambda a: a == "down #dcs-not-leader", "down while pg9 holds the key")
    time.sleep(0.5)
    assert primary.ask("primary") == "down #dcs-not-leader"
    assert read_key(etcd, LEASE_KEY)[0] == "pg9"
    etcd.call("/v3/lease/revoke", {"ID": other})  # pg9 lets go: the key is gone with its lease
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "up once the key was free")
    assert read_key(etcd, LEASE_KEY)[0] == "pg0"


def test_lease_etcd_stopped_primary_down_before_its_lease_can_expire(etcd, lease_cluster):
    primary = lease_cluster.agents[0]
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "primary up")
    etcd.stop()
    try:
        wait_answer(primary, "primary", lambda a: a == "down #dcs-unreachable", "down once renewals fail")
        st = status(primary)["dcs"]
        assert st["lease_left_ms"] <= 1000 or st["lease_held"] is False, st
    finally:
        etcd.start()
    wait_answer(primary, "primary", lambda a: a.startswith("up"), "up again once etcd is back")


def test_lease_promoted_replica_waits_for_the_old_lease_never_two_primaries(etcd, lease_cluster):
    old, new = lease_cluster.agents
    wait_answer(old, "primary", lambda a: a.startswith("up"), "old primary up")
    lease_cluster.pg[1].promote()
    both = []

    def sample():
        a_old, a_new = old.ask("primary") if old.running() else "down #stopped", new.ask("primary")
        if a_old.startswith("up") and a_new.startswith("up"):
            both.append((a_old, a_new))
        return a_new
    # the promoted node is a writable primary, but the key is the old one's: it waits
    wait_answer_fn = lambda pred, desc: cl.wait_until(lambda: pred(sample()), WAIT_S, interval=0.02, desc=desc)
    wait_answer_fn(lambda a: a == "down #dcs-not-leader", "the promoted node down #dcs-not-leader")
    for _ in range(25):
        sample()
        time.sleep(0.02)
    assert old.ask("primary").startswith("up")
    old.kill()  # the old holder goes silent (no revoke): the new one gets the key once the lease is gone
    wait_answer_fn(lambda a: a.startswith("up"), "the promoted node up once the old lease expired")
    assert not both, both
    assert read_key(etcd, LEASE_KEY)[0] == "pg1"


# kill -9 of the leader's postmaster on a real Patroni cluster, pgcheckd in patroni mode and HAProxy on
# conf/haproxy-patroni.cfg: the write backend only ever has the node the leader key names UP, never two
PATRONI_HAPROXY_CFG = cl.REPO / "conf" / "haproxy-patroni.cfg"
PATRONI_PREFIX = "/pgcheckd-it/"

import psycopg2  # noqa: E402


@pytest.fixture
def patroni_cluster(etcd):
    """A started PatroniCluster (two members, a pgcheckd each) on the module's etcd, its namespace wiped
    first (an earlier cluster's `initialize` key would keep this one from bootstrapping)."""
    end = PATRONI_PREFIX[:-1] + chr(ord(PATRONI_PREFIX[-1]) + 1)
    etcd.call("/v3/kv/deleterange", {"key": b64(PATRONI_PREFIX), "range_end": b64(end)})
    pc = PatroniCluster(etcd)
    try:
        pc.start()
        yield pc
    finally:
        pc.close()


def patroni_leader(etcd):
    """The member the leader key names, None for no key, 'error' when etcd did not answer."""
    try:
        kvs = etcd.call("/v3/kv/range", {"key": b64(PATRONI_PREFIX + "it/leader")}).get("kvs", [])
    except (OSError, ValueError):
        return "error"
    return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None


def writable(port):
    try:
        con = psycopg2.connect(host="127.0.0.1", port=port, dbname="postgres", user=cl.PG_USER, connect_timeout=2)
    except psycopg2.Error:
        return False
    try:
        cur = con.cursor()
        cur.execute("SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'")
        return cur.fetchone()[0]
    except psycopg2.Error:
        return False
    finally:
        con.close()


def test_patroni_leader_postmaster_killed_write_backend_has_only_the_leader(etcd, patroni_cluster):
    pc = patroni_cluster
    dead = cl.free_ports(2)
    write, read, api = cl.free_ports(3)
    mapping = {cl.DEMO_PORTS["write"]: write, cl.DEMO_PORTS["read"]: read, cl.DEMO_PORTS["api"]: api}
    for i in range(3):  # the template has three nodes; the third is on dead ports
        mapping[cl.DEMO_PORTS["pg"][i]] = pc.pg_ports[i] if i < 2 else dead[0]
        mapping[cl.DEMO_PORTS["agent"][i]] = pc.agents[i].port if i < 2 else dead[1]
    h = cl.Haproxy(pc, mapping, PATRONI_HAPROXY_CFG, name="haproxy-patroni")
    server = {"p1": "node1", "p2": "node2"}
    try:
        h.start()

        def write_up():
            return sorted(s for s, (st, _) in h.states("primary").items() if st == "UP" or st.startswith("UP "))
        # HAProxy starts every server UP until its first check (inter 3s): wait for it to be steady
        cl.wait_until(lambda: write_up() == ["node1"] and h.status("primary", "node2") == "DOWN", 15,
                      interval=0.1, desc="node1 alone UP in the write backend")
        assert patroni_leader(etcd) == "p1"
        pidfile = pc.node_dir(0) / "data" / "postmaster.pid"
        old_pid = int(pidfile.read_text().split()[0])
        os.kill(old_pid, signal.SIGKILL)
        t0 = time.monotonic()
        samples, wrong, agents_wrong = 0, [], []
        statuses = set()
        leader, next_probe = None, 0.0
        while True:
            assert time.monotonic() - t0 < 25, (f"no writable leader UP in HAProxy 25 s after the kill; last "
                                                f"leader {leader!r}, samples {samples}")
            before = patroni_leader(etcd)
            answers = {name: a.ask("primary") for name, a in zip(("p1", "p2"), pc.agents)}
            st = {s: status for s, (status, _) in h.states("primary").items()}
            after = patroni_leader(etcd)
            samples += 1
            named = {server.get(before), server.get(after)}
            up = sorted(s for s, status in st.items() if status == "UP" or status.startswith("UP "))
            statuses.add(st["node1"])
            if len(up) > 1 or any(s not in named for s in up):
                wrong.append((round(time.monotonic() - t0, 3), before, st, after))
            agents_up = [server[n] for n, a in answers.items() if a.startswith("up")]
            if len(agents_up) > 1 or any(s not in named for s in agents_up):
                agents_wrong.append((round(time.monotonic() - t0, 3), before, answers, after))
            leader = after if after == before else None
            if leader in server and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + 0.1
                if writable(pc.pg_ports[int(leader[1:]) - 1]) and st[server[leader]] == "UP":
                    break
            time.sleep(0.02)
        assert not wrong, wrong[:10]
        assert not agents_wrong, agents_wrong[:10]
        new_pid = int(pidfile.read_text().split()[0]) if leader == "p1" else None
        assert new_pid != old_pid, "the killed postmaster is still the leader's"
        assert samples > 20, samples
        print(f"leader after: {leader}, {samples} samples in {time.monotonic() - t0:.1f} s, "
              f"node1's statuses: {sorted(statuses)}")
    except Exception:
        print(pc.logs())
        print(h.log())
        raise
    finally:
        h.stop()
