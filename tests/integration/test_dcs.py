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

import psycopg2
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
    """An etcd cluster of `members` members on free loopback ports, their data in tmp; stop() and start()
    keep the data (and take member indexes, default all). One member (the module's, for most tests) is
    fast to start; url is the first member's, urls all. extra_host: another local address every member
    also listens on (a network namespace's way in), the same port."""

    def __init__(self, tmp, members=1, extra_host=None, args=()):
        self.tmp = tmp
        ports = cl.free_ports(2 * members)
        self.ports, self.peer_ports = ports[:members], ports[members:]
        self.port = self.ports[0]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]
        self.url = self.urls[0]
        self.extra_host = extra_host
        self.args = list(args)
        self.procs = [None] * members
        self.logfile = tmp / "etcd.log"
        self.token = None  # sent as Authorization once auth is enabled (see authenticate)

    def _names(self, members):
        return range(len(self.procs)) if members is None else members

    def start(self, timeout=30, members=None):
        cluster = ",".join(f"dcs{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        for i in self._names(members):
            peer, url = f"http://127.0.0.1:{self.peer_ports[i]}", self.urls[i]
            listen = url + (f",http://{self.extra_host}:{self.ports[i]}" if self.extra_host else "")
            with open(self.tmp / f"etcd{i}.log" if len(self.procs) > 1 else self.logfile, "ab") as log:
                self.procs[i] = subprocess.Popen(
                    [ETCD, "--name", f"dcs{i}", "--data-dir", str(self.tmp / f"etcd-data{i or ''}"),
                     "--listen-client-urls", listen, "--advertise-client-urls", url,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", cluster, "--log-level", "warn", "--logger", "zap", *self.args],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for i in self._names(members):
            def ready(i=i):
                if self.procs[i].poll() is not None:
                    raise cl.ClusterError(f"etcd member {i} exited with {self.procs[i].returncode}: {self.logs()}")
                try:
                    return self.call("/v3/kv/range", {"key": b64("/")}, url=self.urls[i]) is not None
                except urllib.error.HTTPError as e:
                    return e.code == 401 or e.code == 400  # it answers (auth enabled: not to us)
                except OSError:
                    return False
            cl.wait_until(ready, timeout, interval=0.1, desc=f"etcd member {i} to answer")
        return self

    def stop(self, members=None):
        for i in self._names(members):
            p = self.procs[i]
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)

    def logs(self):
        return "\n".join(f.read_text(errors="replace")[-2000:] for f in sorted(self.tmp.glob("etcd*.log")))

    def call(self, path, body, url=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = self.token
        req = urllib.request.Request((url or self.url) + path, data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def authenticate(self, name, password):
        """A token for name (etcd's authentication on), sent with every call from now on."""
        self.token = None
        self.token = self.call("/v3/auth/authenticate", {"name": name, "password": password})["token"]

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
        return cl.patroni_yml("it", "/pgcheckd-it/", f"p{i + 1}", self.rest[i], self.etcd.port, self.pg_ports[i],
                              self.node_dir(i))

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
        c.start()  # HAProxy in front, conf/haproxy.cfg as shipped
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


class Handover:
    """What HAProxy did while the primary changed hands: its 'show stat' over the stats socket every 20 ms
    (the servers UP in be_primary at each sample), and a writer through the write frontend, a new
    connection every 20 ms, inserting a sequence number and the server's port (inet_server_port()).
    PostgreSQL's own tables tell afterwards where each write landed, whatever the client saw."""

    TABLE = "handover"

    def __init__(self, haproxy, write_port):
        self.haproxy, self.write_port = haproxy, write_port
        self.samples = []  # (monotonic time, frozenset of servers UP in be_primary)
        self.writes = []   # (monotonic time, seq, port) of each insert the client saw committed
        self.errors = 0
        self.stat_errors = []
        self.seq = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._sample, daemon=True),
                        threading.Thread(target=self._write, daemon=True)]

    @classmethod
    def prepare(cls, primary, replicas):
        primary.sql(f"DROP TABLE IF EXISTS {cls.TABLE}")
        primary.sql(f"CREATE TABLE {cls.TABLE} (seq int PRIMARY KEY, port int NOT NULL, at timestamptz DEFAULT now())")
        for r in replicas:
            cl.wait_until(lambda r=r: r.sql1("SELECT to_regclass(%s) IS NOT NULL", (cls.TABLE,)), 30,
                          desc=f"{r.name} to replay the {cls.TABLE} table")

    def _sample(self):
        while not self.stop.is_set():
            try:
                rows = self.haproxy.show_stat()
                up = frozenset(r["svname"] for r in rows if r["pxname"] == "be_primary"
                               and r["svname"] not in ("FRONTEND", "BACKEND") and r["status"].startswith("UP"))
                self.samples.append((time.monotonic(), up))
            except (OSError, cl.ClusterError) as e:
                self.stat_errors.append(repr(e))
            time.sleep(0.02)

    def _write(self):
        while not self.stop.is_set():
            self.seq += 1
            seq = self.seq
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.write_port, user=cl.PG_USER, dbname="postgres",
                                        connect_timeout=3, application_name="handover-writer")
                try:
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute(f"INSERT INTO {self.TABLE} (seq, port) VALUES (%s, inet_server_port()) "
                                    "RETURNING port", (seq,))
                        self.writes.append((time.monotonic(), seq, cur.fetchone()[0]))
                finally:
                    conn.close()
            except psycopg2.Error:
                self.errors += 1
            time.sleep(0.02)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def two_up(self):
        return [(t, sorted(up)) for t, up in self.samples if len(up) > 1]

    def first_up(self, server):
        return next((t for t, up in self.samples if up == {server}), None)

    def landed(self, pg):
        """{seq: port} of the rows the server itself has."""
        return dict(pg.sql(f"SELECT seq, port FROM {self.TABLE}"))

    def check(self, old_pg, new_pg):
        """The handover's invariants: never two servers UP in be_primary; no write on the old primary after the
        new one took its first (by both servers' own rows); both took writes. Returns (old rows, new rows)."""
        assert len(self.samples) > 100 and not self.stat_errors[:1], (len(self.samples), self.stat_errors[:3])
        assert not self.two_up(), self.two_up()[:5]
        on_old, on_new = self.landed(old_pg), self.landed(new_pg)
        assert set(on_old.values()) <= {old_pg.port} and on_new, (on_old, on_new)
        new_only = {s for s, port in on_new.items() if port == new_pg.port}
        assert new_only, "the new primary took no write through HAProxy"
        late = sorted(s for s in on_old if s > min(new_only))
        assert not late, f"writes {late} reached the old primary after the new one took write {min(new_only)}"
        assert any(port == old_pg.port for _, _, port in self.writes), "the old primary took no write"
        return on_old, on_new


def test_lease_promoted_replica_waits_for_the_old_lease_never_two_primaries(etcd, lease_cluster, report):
    """A replica promoted while the old primary runs, HAProxy (conf/haproxy.cfg) in front: the old holder keeps
    the key while its pgcheckd runs; frozen (SIGSTOP: no revoke, no answer to HAProxy's checks) its lease runs
    out and the promoted node takes over; thawed, the old one stays down. HAProxy's show stat, sampled every
    20 ms over the whole window, never has two servers UP in be_primary, and no write through the write
    frontend reaches the old primary after the new one took one."""
    old, new = lease_cluster.agents
    old_pg, new_pg = lease_cluster.pg
    wait_answer(old, "primary", lambda a: a.startswith("up"), "old primary up")
    lease_cluster.wait_routing(primary=0, replicas=[1])
    Handover.prepare(old_pg, [new_pg])
    both = []

    def sample():
        a_old, a_new = old.ask("primary", timeout=0.3) if old.running() and not frozen else "down #frozen", \
            new.ask("primary")
        if a_old.startswith("up") and a_new.startswith("up"):
            both.append((a_old, a_new))
        return a_new

    def wait_new(pred, desc):
        cl.wait_until(lambda: pred(sample()), WAIT_S, interval=0.02, desc=desc)

    def hold(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sample()
            time.sleep(0.02)
    frozen = False
    with Handover(lease_cluster.haproxy, lease_cluster.ports["write"]) as h:
        try:
            hold(0.5)
            lease_cluster.pg[1].promote()
            # the promoted node is a writable primary, but the key is the old one's: it waits, beyond a lease
            wait_new(lambda a: a == "down #dcs-not-leader", "the promoted node down #dcs-not-leader")
            hold(2.5)
            assert old.ask("primary").startswith("up") and read_key(etcd, LEASE_KEY)[0] == "pg0"
            old.signal(signal.SIGSTOP)  # the old holder freezes: no revoke, its lease runs out in etcd
            frozen, t_frozen = True, time.monotonic()
            wait_new(lambda a: a.startswith("up"), "the promoted node up once the old lease expired")
            cl.wait_until(lambda: h.first_up("node2") is not None, WAIT_S, desc="node2 UP in be_primary")
            hold(2)
        finally:
            if frozen:
                old.signal(signal.SIGCONT)
                frozen = False
        # thawed, the old holder's lease is gone: it answers down, never up again
        wait_answer(old, "primary", lambda a: a.startswith("down #dcs-"), "the thawed old holder down")
        hold(1.5)
    assert not both, both
    assert read_key(etcd, LEASE_KEY)[0] == "pg1"
    on_old, on_new = h.check(old_pg, new_pg)
    last_old = max(t for t, _, port in h.writes if port == old_pg.port)
    report(f"{len(h.samples)} show-stat samples, 0 with two UP; {len(h.writes)} writes seen committed "
           f"({h.errors} refused or failed); last write on the old primary {last_old - t_frozen:+.2f} s after the "
           f"freeze, node2 UP in be_primary {h.first_up('node2') - t_frozen:+.2f} s after it")


# etcd's election timings, quick on loopback (its defaults: 100 ms heartbeat, 1 s election timeout)
ETCD_FAST_RAFT = ("--heartbeat-interval", "50", "--election-timeout", "500")


def test_lease_three_member_etcd_quorum_lost_primary_down_then_back(lease_cluster, tmp_path):
    """Three etcd members, all in pgcheckd's endpoints: one stopped, pgcheckd fails over to another and holds
    the key; two stopped (no quorum: nothing etcd says is believed), 'primary' goes down within the lease's
    TTL; both back, it holds the key and answers up again."""
    e3 = Etcd(tmp_path, members=3, args=ETCD_FAST_RAFT)
    conf = lease_conf("pg0")
    conf["dcs"].update({"endpoints": ", ".join(e3.urls), "scope": "three"})
    agent = cl.Pgcheckd(lease_cluster, lease_cluster.pg[0], cl.free_ports(1)[0], conf=conf, name="pgcheckd-etcd3")
    try:
        e3.start()
        agent.start()
        wait_answer(agent, "primary", lambda a: a.startswith("up"), "up with three members")
        first = e3.urls.index(status(agent)["dcs"]["endpoint"])
        e3.stop([first])
        # the member in use is gone: the next one answers (an election may pass first: up again, not "never down")
        wait_answer(agent, "primary", lambda a: a.startswith("up") and status(agent)["dcs"]["endpoint"] != e3.urls[first],
                    "up through another member")
        second = e3.urls.index(status(agent)["dcs"]["endpoint"])
        before = len(agent.log())
        e3.stop([second])  # one of three left: no quorum
        t0 = time.monotonic()
        cl.wait_until(lambda: agent.ask("primary") == "down #dcs-unreachable", 2 + 5, interval=0.02,
                      desc="down #dcs-unreachable within the lease's TTL (2 s) and slack")
        assert status(agent)["dcs"]["last_error"] != "ok"
        time.sleep(0.5)
        assert agent.ask("primary") == "down #dcs-unreachable"
        down_after = time.monotonic() - t0
        e3.start(members=[first, second])
        wait_answer(agent, "primary", lambda a: a.startswith("up"), "up once the quorum is back")
        holder, _ = read_key(e3, "/pgcheckd-lease/three/leader")
        assert holder == "pg0"
        episode = agent.log()[before:]
        assert episode.count("dcs: etcd") >= 1 and episode.count("answers again") == 1, episode
        print(f"down {down_after:.2f} s after the quorum was lost")
    except Exception:
        print(e3.logs())
        raise
    finally:
        agent.stop()
        e3.stop()


class Netns:
    """A network namespace this test makes (and removes, with its veth pair): inside, PART_NS (a pgcheckd's
    address); outside, on the root side of the veth, PART_ROOT (the source of HAProxy's checks) and PART_ETCD
    (where etcd also listens). cut() sends the namespace's packets to PART_ETCD to a next hop no one has (a
    neighbour entry to a MAC on no interface): they are lost without a word, as in a real partition, while
    HAProxy still reaches the pgcheckd inside. The /24 is blackholed in the root namespace meanwhile, so that
    nothing for it leaves the machine, even half set up."""

    NET, PART_ROOT, PART_NS, PART_ETCD, DEAD_HOP = "10.203.77.0/24", "10.203.77.1", "10.203.77.2", "10.203.77.3", \
        "10.203.77.4"

    def __init__(self):
        tag = os.getpid() % 100000
        self.name, self.host_if, self.ns_if = f"pgcheckd-it-{tag}", f"pgcdh{tag}", f"pgcdn{tag}"
        self.made = []

    @staticmethod
    def usable():
        probe = f"pgcheckd-probe-{os.getpid()}"
        r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return r.stderr.decode(errors="replace").strip() or "ip netns add failed"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, stdin=subprocess.DEVNULL)
        return None

    def ip(self, *args, ns=False):
        cmd = ["ip", "-n", self.name, *args] if ns else ["ip", *args]
        subprocess.run(cmd, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=10)

    def up(self):
        self.ip("route", "add", "blackhole", self.NET)
        self.made.append("blackhole")
        self.ip("netns", "add", self.name)
        self.made.append("netns")
        self.ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self.made.append("veth")
        self.ip("link", "set", self.ns_if, "netns", self.name)
        for a in (self.PART_ROOT, self.PART_ETCD):
            self.ip("addr", "add", f"{a}/29", "dev", self.host_if)
        self.ip("link", "set", self.host_if, "up")
        self.ip("addr", "add", f"{self.PART_NS}/29", "dev", self.ns_if, ns=True)
        self.ip("link", "set", self.ns_if, "up", ns=True)
        self.ip("link", "set", "lo", "up", ns=True)
        self.ip("neigh", "add", self.DEAD_HOP, "lladdr", "02:00:00:00:00:01", "dev", self.ns_if, "nud", "permanent",
                ns=True)
        return self

    def cut(self):
        self.ip("route", "add", f"{self.PART_ETCD}/32", "via", self.DEAD_HOP, "dev", self.ns_if, ns=True)

    def heal(self):
        self.ip("route", "del", f"{self.PART_ETCD}/32", ns=True)

    def close(self):
        for what in reversed(self.made):
            cmd = {"veth": ["ip", "link", "del", self.host_if], "netns": ["ip", "netns", "del", self.name],
                   "blackhole": ["ip", "route", "del", "blackhole", self.NET]}[what]
            subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=10)
        self.made = []


class NetnsPgcheckd(cl.Pgcheckd):
    """A pgcheckd run in a network namespace (`ip netns exec`), listening on host there; its PostgreSQL is
    reached over the Unix socket, which no namespace cuts."""

    def __init__(self, cluster, pg, port, ns, host, conf=None, name=None):
        self.ns, self.host = ns, host
        super().__init__(cluster, pg, port, conf=conf, name=name)

    def base_conf(self):
        c = super().base_conf()
        c["agent"]["listen"] = f"{self.host}:{self.port}"
        return c

    def start(self, wait=True, timeout=10):
        logf = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, cl.PGCHECKD_BIN, "-c", str(self.ini)],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            logf.close()
        self.cluster._procs.append(self.proc)
        if self not in self.cluster._pgcheckds:
            self.cluster._pgcheckds.append(self)
        if wait:
            cl.wait_until(lambda: self.proc.poll() is None and cl.port_accepts(self.port, host=self.host), timeout,
                          desc=f"{self.name} to listen on {self.host}:{self.port}")
        return self

    def request(self, data=b"", timeout=2.0, **kw):
        return cl.agent_request(self.port, data, timeout=timeout, host=self.host, **kw)


def test_lease_partitioned_primary_takes_no_write_once_the_promoted_node_leads(tmp_path, report):
    """A real partition: the old primary's pgcheckd runs in a network namespace, its packets to etcd lost once
    cut, while HAProxy still reaches it (and the old PostgreSQL, never cut off, still takes writes sent to it).
    A replica on the other side is promoted. The isolated pgcheckd answers down #dcs-unreachable before its
    lease can expire; the promoted node takes the key only then. HAProxy's show stat never has two servers UP
    in be_primary, no write through HAProxy lands on the isolated primary after the new one took one, and once
    the partition heals the old one stays down (the key is the other's)."""
    why = Netns.usable()
    if why is not None:
        pytest.skip(f"network namespaces are not usable here ({why}): the partition needs one")
    net = Netns()
    e = c = None
    try:
        net.up()
        e = Etcd(tmp_path, extra_host=Netns.PART_ETCD).start()
        c = cl.Cluster(replicas=1, pgcheckd_conf={1: merge_endpoint(lease_conf("pg1"), e)})
        c.start(pgcheckd=False, haproxy=False)
        iso_conf = lease_conf("pg0")
        iso_conf["dcs"]["endpoints"] = f"http://{Netns.PART_ETCD}:{e.port}"
        iso_conf["agent"] = {"allow": f"{Netns.PART_ROOT}/32"}  # HAProxy's checks come from the veth's root side
        old = c.agents[0] = NetnsPgcheckd(c, c.pg[0], c.ports["agent"][0], net.name, Netns.PART_NS, conf=iso_conf)
        new = c.agents[1]
        for a in c.agents:
            a.start()
        a0 = c.ports["agent"][0]
        hap = c.haproxy = c.extra_haproxy(name="haproxy", edit=lambda t: t.replace(
            f"port {a0} agent-port {a0}", f"addr {Netns.PART_NS} port {a0} agent-addr {Netns.PART_NS} agent-port {a0}"))
        wait_answer(old, "primary", lambda a: a.startswith("up"), "the old primary up, its pgcheckd in the namespace")
        c.wait_routing(primary=0, replicas=[1])
        Handover.prepare(c.pg[0], [c.pg[1]])
        answers = []  # (time, old's answer, new's answer)

        def sample():
            answers.append((time.monotonic(), old.ask("primary", timeout=1), new.ask("primary", timeout=1)))
            return answers[-1]
        with Handover(hap, hap.write_port) as h:
            for _ in range(25):
                sample()
                time.sleep(0.02)
            net.cut()
            t_cut = time.monotonic()
            c.pg[1].promote()
            cl.wait_until(lambda: sample()[2].startswith("up"), WAIT_S, interval=0.02,
                          desc="the promoted node up once the isolated one's lease expired")
            cl.wait_until(lambda: h.first_up("node2") is not None, WAIT_S, desc="node2 UP in be_primary")
            end = time.monotonic() + 2
            while time.monotonic() < end:
                sample()
                time.sleep(0.02)
            net.heal()
            wait_answer(old, "primary", lambda a: a == "down #dcs-not-leader", "the old one down once healed")
            time.sleep(0.5)
        both = [s for s in answers if s[1].startswith("up") and s[2].startswith("up")]
        assert not both, both[:5]
        t_old_down = next(t for t, a_old, _ in answers if t > t_cut and a_old == "down #dcs-unreachable")
        t_new_up = next(t for t, _, a_new in answers if a_new.startswith("up"))
        assert t_old_down < t_new_up
        assert all(not a_old.startswith("up") for t, a_old, _ in answers if t > t_old_down)
        h.check(c.pg[0], c.pg[1])
        # its last renewal was sent at most interval_ms before the cut: its lease could expire in etcd from
        # lease_ttl_s after that on, and no write may land on it from then on (the margin covers HAProxy's
        # inter + timeout check); the client's time of a write is after its commit
        dcs = lease_conf("pg0")["dcs"]
        expiry = t_cut + int(dcs["lease_ttl_s"]) - int(dcs["interval_ms"]) / 1000
        late = [(round(t - t_cut, 2), seq) for t, seq, port in h.writes if port == c.pg[0].port and t > expiry]
        assert not late, f"writes (s after the cut, seq) {late} reached the isolated primary once its lease could expire"
        assert old.ask("primary") == "down #dcs-not-leader" and read_key(e, LEASE_KEY)[0] == "pg1"
        last_old = max(t for t, _, port in h.writes if port == c.pg[0].port)
        report(f"{len(h.samples)} show-stat samples, 0 with two UP; isolated pgcheckd down "
               f"{t_old_down - t_cut:.2f} s after the cut, its last write {last_old - t_cut:+.2f} s, the promoted "
               f"node up {t_new_up - t_cut:.2f} s, UP in be_primary {h.first_up('node2') - t_cut:.2f} s")
    finally:
        try:
            if c is not None:
                c.close()  # HAProxy's checks into the namespace stop before it goes
        finally:
            if e is not None:
                e.stop()
            net.close()


ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def etcd_enable_auth(e, user, password, prefix):
    """etcd's authentication on: root, and user with a role that may read and write prefix (etcdctl)."""
    def ctl(*args):
        r = subprocess.run([ETCDCTL, "--endpoints", e.url, *args], capture_output=True, timeout=20,
                           stdin=subprocess.DEVNULL, env={**cl._clean_env(), "ETCDCTL_API": "3"})
        assert r.returncode == 0, (args[:2], r.stdout, r.stderr)
    ctl("user", "add", "root:root-secret-pw")
    ctl("user", "add", f"{user}:{password}")
    ctl("role", "add", user)
    ctl("role", "grant-permission", "--prefix=true", user, "readwrite", prefix)
    ctl("user", "grant-role", user, user)
    ctl("auth", "enable")
    e.authenticate("root", "root-secret-pw")


def test_lease_etcd_authentication_token_again_and_wrong_password_down(lease_cluster, tmp_path):
    """[dcs] username and password_file against a real etcd with authentication on: with the right password
    the primary takes the key and answers up; a token etcd revokes (the user's password set again) is replaced
    by authenticating again; a wrong password makes 'primary' down #dcs-auth-failed, logged once, and the
    password is in no log line, /status or /metrics. A password file others may read, or none, is refused by
    the config check, naming the file, line and key."""
    e = Etcd(tmp_path, args=("--bcrypt-cost", "4")).start()  # quick to check a password
    good, wrong = "pgcheckd-etcd-pw-1f3c", "not-the-password-9d2e"
    etcd_enable_auth(e, "pgcheckd", good, "/pgcheckd-lease/auth/")
    pwfile = lease_cluster.tmp / "etcd-password"
    pwfile.write_text(good + "\n")
    os.chmod(pwfile, 0o600)
    conf = lease_conf("pg0")
    # authenticate goes through etcd's raft log: a deadline for a loaded machine (and a lease it fits in)
    conf["dcs"].update({"endpoints": e.url, "scope": "auth", "username": "pgcheckd", "password_file": str(pwfile),
                        "timeout_ms": "1000", "lease_ttl_s": "4"})
    agent = cl.Pgcheckd(lease_cluster, lease_cluster.pg[0], cl.free_ports(1)[0], conf=conf, name="pgcheckd-auth")
    try:
        agent.start()
        wait_answer(agent, "primary", lambda a: a.startswith("up"), "up, authenticated")
        assert read_key(e, "/pgcheckd-lease/auth/leader")[0] == "pg0"
        st = status(agent)["dcs"]
        assert st["authenticated"] is True and st["authentications"] == 1 and st["auth_failures"] == 0, st
        # the user's password set again: etcd revokes its tokens (401): pgcheckd authenticates again
        r = subprocess.run([ETCDCTL, "--endpoints", e.url, "--user", "root:root-secret-pw", "user", "passwd",
                            "pgcheckd", "--interactive=false"], input=(good + "\n").encode(), capture_output=True,
                           timeout=20, env=cl._clean_env())
        assert r.returncode == 0, r
        cl.wait_until(lambda: status(agent)["dcs"]["authentications"] == 2, WAIT_S, desc="a second token")
        time.sleep(0.5)
        st = status(agent)["dcs"]
        assert st["last_error"] == "ok" and st["authentications"] == 2 and st["auth_failures"] == 0, st
        assert agent.ask("primary").startswith("up") and "auth-failed" not in agent.log()
        # a wrong password: down, naming authentication; one log line, however many tries
        pwfile.write_text(wrong + "\n")
        agent.sighup()
        wait_answer(agent, "primary", lambda a: a == "down #dcs-auth-failed", "down #dcs-auth-failed")
        time.sleep(2.5)  # tries again after 1 s, then 2 s: still the same episode
        assert agent.ask("primary") == "down #dcs-auth-failed"
        st = status(agent)["dcs"]
        assert st["last_error"] == "auth-failed" and st["authenticated"] is False and st["auth_failures"] >= 2, st
        metrics = http_get(agent, "/metrics")
        assert 'pgcheckd_dcs_last_error{error="auth-failed"} 1' in metrics
        assert "pgcheckd_dcs_auth_failures_total " in metrics
        log = agent.log()
        assert log.count(": auth-failed (") == 1, log[-3000:]
        assert "etcd refused user pgcheckd's name or password" in log
        for secret in (good, wrong):
            assert secret not in log and secret not in http_get(agent, "/status") and secret not in metrics
        # the right one again: up
        pwfile.write_text(good + "\n")
        agent.sighup()
        wait_answer(agent, "primary", lambda a: a.startswith("up"), "up with the right password again")
        # the config check: a password file others may read, or none
        line = agent.ini.read_text().splitlines().index(f"password_file = {pwfile}") + 1
        os.chmod(pwfile, 0o640)
        rc, _, err = agent.check_config()
        assert rc == 2 and f"{agent.ini}:{line}: [dcs] password_file: " in err and str(pwfile) in err, err
        assert good not in err
        os.chmod(pwfile, 0o600)
        pwfile.unlink()
        rc, _, err = agent.check_config()
        assert rc == 2 and f"{agent.ini}:{line}: [dcs] password_file: cannot open {pwfile}" in err, err
    except Exception:
        print(e.logs())
        raise
    finally:
        agent.stop()
        e.stop()


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
