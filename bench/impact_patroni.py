#!/usr/bin/python3
"""bench/impact_patroni.py: what clients see through HAProxy on a Patroni cluster, with Patroni's own REST
checks and with pgcheckd in `[dcs] mode = patroni`, side by side in one run.

  /usr/bin/python3 bench/impact_patroni.py [ROUNDS]        (default 2; about 3 minutes at 2)

One cluster: etcd (one member on loopback), three PostgreSQL nodes under Patroni 3 (Debian's), Patroni's
timings near its minimums (ttl 10, loop_wait 1, retry_timeout 4), and one pgcheckd per node in patroni
mode. Two HAProxy instances run against it at the same time:
- "patroni-rest": Patroni's own template (extras/confd/templates/haproxy.tmpl in Patroni's repository:
  `option httpchk HEAD /primary` and `HEAD /replica` on each member's REST port, `http-check expect status
  200`, `default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions`, `retries 2`);
- "pgcheckd": conf/haproxy-patroni.cfg as shipped (Patroni's check paths on pgcheckd's port, inter 200ms
  rise 1 fall 1, one primary or none for writes), ports substituted; pgcheckd watches each data directory.
Through each, the same clients: a writer that opens a new connection every 20 ms and inserts a row, a
reader every 10 ms (each attempt waits for the one before it; libpq connect_timeout 2 s, statement_timeout
2 s). `show stat` of both and the leader key are sampled every ~20 ms. Events, each round: `patronictl
switchover` (planned), kill -9 of the leader's postmaster (Patroni restarts it, or fails over), and
`patronictl restart` of a replica. Per event and checker: failed reads and writes, read-only errors
(writes that reached a node in recovery or read-only), acknowledged writes missing from the leader
afterwards, ms from the event's start to the first successful write on the leader that holds the key
after it, and ms until HAProxy stops sending to the old leader (its server in the write backend no longer
UP; for a replica restart: the replica in the read backend). The notes add when the checker itself first
answered that node not 200 (each node's checkers asked directly every ~50 ms), the errors by kind, and the
`show stat` samples where the write backend had a server UP that the leader key (read just before or just
after the sample) did not name, or two. Numbers only: nothing is asserted.
"""
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
import cluster as cl  # noqa: E402
import psycopg2  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PATRONI = shutil.which("patroni") or "/usr/bin/patroni"
PATRONICTL = shutil.which("patronictl") or "/usr/bin/patronictl"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
SCOPE, NAMESPACE = "impact", "/pgcheckd-impact/"
LEADER_KEY = f"{NAMESPACE}{SCOPE}/leader"
N = 3
CHECKERS = ("patroni-rest", "pgcheckd")
EVENTS = ("switchover", "leader-kill9", "replica-restart")
KEYS = ("event", "checker", "rounds", "failed_reads", "failed_writes", "read_only_errors", "lost_acked_writes",
        "first_write_ms_median", "first_write_ms_max", "out_ms_median", "out_ms_max", "notes")
WRITE_EVERY, READ_EVERY, SAMPLE_EVERY = 0.020, 0.010, 0.020
SETTLE_S = 60  # bound for the cluster and both HAProxy instances to be steady after an event

# Patroni's template (extras/confd/templates/haproxy.tmpl) rendered for three members, on the demo ports
# cluster.py substitutes; 15480-15482 stand for the members' REST ports. Bound to loopback, and a stats
# socket added so that the run can sample it.
PATRONI_TEMPLATE = """global
    maxconn 100
    stats socket ipv4@127.0.0.1:15002 level admin
    stats timeout 10s

defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen primary
    bind 127.0.0.1:15000
    option httpchk HEAD /primary
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
    server node1 127.0.0.1:15432 maxconn 100 check port 15480
    server node2 127.0.0.1:15433 maxconn 100 check port 15481
    server node3 127.0.0.1:15434 maxconn 100 check port 15482

listen replicas
    bind 127.0.0.1:15001
    option httpchk HEAD /replica
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
    server node1 127.0.0.1:15432 maxconn 100 check port 15480
    server node2 127.0.0.1:15433 maxconn 100 check port 15481
    server node3 127.0.0.1:15434 maxconn 100 check port 15482
"""


def b64(s):
    return base64.b64encode(s.encode()).decode()


def say(msg):
    print(f"[impact_patroni {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Stack:
    """etcd, three Patroni members with their PostgreSQL, one pgcheckd each, and the two HAProxy instances.
    Holds what cl.Pgcheckd and cl.Haproxy need of a cluster (tmp, _procs, _pgcheckds)."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="impact-patroni-"))  # where the postgres user can reach it
        os.chmod(self.tmp, 0o755)
        p = cl.free_ports(2 + 3 * N)
        self.etcd_port, self.etcd_peer = p[0], p[1]
        self.rest, self.pg_ports, self.agent_ports = p[2:2 + N], p[2 + N:2 + 2 * N], p[2 + 2 * N:2 + 3 * N]
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self._procs, self._pgcheckds = [], []
        self.patroni = []
        self.agents = []
        self.haproxy = {}

    def node_dir(self, i):
        return self.tmp / f"p{i + 1}"

    def name(self, i):
        return f"p{i + 1}"

    def yml(self, i=0):
        return str(self.node_dir(i) / "patroni.yml")

    def patroni_config(self, i):
        return cl.patroni_yml(SCOPE, NAMESPACE, f"p{i + 1}", self.rest[i], self.etcd_port, self.pg_ports[i],
                              self.node_dir(i), ttl=10, retry_timeout=4, max_connections=100)

    # -- etcd

    def etcd_call(self, path, body, timeout=2):
        req = urllib.request.Request(self.etcd_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def leader(self):
        """The member the leader key names (None: no key), or 'error' when etcd did not answer."""
        try:
            kvs = self.etcd_call("/v3/kv/range", {"key": b64(LEADER_KEY)}, timeout=1).get("kvs", [])
        except (OSError, ValueError):
            return "error"
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None

    def rest_status(self, i, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.rest[i]}{path}", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    # -- start and stop

    def start(self):
        with open(self.tmp / "etcd.log", "ab") as log:
            peer = f"http://127.0.0.1:{self.etcd_peer}"
            self._procs.append(subprocess.Popen(
                [ETCD, "--name", "impact", "--data-dir", str(self.tmp / "etcd-data"),
                 "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"impact={peer}", "--log-level", "warn", "--logger", "zap"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        cl.wait_until(lambda: self.leader() != "error", 30, interval=0.1, desc="etcd to answer")
        uid, gid = cl._pg_ids()
        env = cl._clean_env()
        env["HOME"] = str(self.tmp)
        for i in range(N):
            d = self.node_dir(i)
            d.mkdir(mode=0o700)
            (d / "patroni.yml").write_text(self.patroni_config(i))
            for f in (d, d / "patroni.yml"):
                os.chown(f, uid, gid)
        for i in range(N):
            with open(self.tmp / f"patroni-p{i + 1}.log", "ab") as log:
                self.patroni.append(subprocess.Popen(
                    [PATRONI, self.yml(i)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env=env, **cl._pg_popen_kw()))
            if i == 0:  # the first bootstraps the cluster; the others clone it
                cl.wait_until(lambda: self.rest_status(0, "/primary") == 200, 90, interval=0.2,
                              desc="Patroni p1 to lead")
        for i in range(1, N):
            cl.wait_until(lambda i=i: self.rest_status(i, "/replica") == 200, 90, interval=0.2,
                          desc=f"Patroni p{i + 1} to run as a replica")
        for i in range(N):
            pg = type("Pg", (), {"sockdir": self.node_dir(i), "port": self.pg_ports[i], "name": self.name(i)})()
            # as the README advises: the data directory watched (a restart is connected to at once)
            a = cl.Pgcheckd(self, pg, self.agent_ports[i], name=f"pgcheckd-p{i + 1}", conf={
                "pg": {"data_directory": str(self.node_dir(i) / "data")},
                "dcs": {"mode": "patroni", "endpoints": self.etcd_url, "scope": SCOPE, "namespace": NAMESPACE,
                        "name": self.name(i)}})
            self.agents.append(a.start())
        for checker, source, checks in (("patroni-rest", None, self.rest),
                                        ("pgcheckd", REPO / "conf" / "haproxy-patroni.cfg", self.agent_ports)):
            write, read, api = cl.free_ports(3)
            mapping = {15000: write, 15001: read, 15002: api}
            for i in range(N):
                mapping[cl.DEMO_PORTS["pg"][i]] = self.pg_ports[i]
                mapping[cl.DEMO_PORTS["agent"][i]] = checks[i]
            if source is None:
                source = self.tmp / "haproxy-patroni-template.cfg"
                source.write_text(PATRONI_TEMPLATE)
            self.haproxy[checker] = cl.Haproxy(self, mapping, source, name=f"haproxy-{checker}").start()
        con = psycopg2.connect(host="127.0.0.1", port=self.pg_ports[0], dbname="postgres", user="postgres",
                               connect_timeout=5)
        con.autocommit = True
        con.cursor().execute("CREATE TABLE impact (checker text, id bigint, PRIMARY KEY (checker, id))")
        con.close()
        return self

    def close(self):
        for h in self.haproxy.values():
            h.stop(timeout=3)
        for a in self.agents:
            a.stop()
        for p in self.patroni:
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
        for i in range(N):  # a postmaster of a Patroni stopped while starting it, by its pid file
            try:
                pid = int((self.node_dir(i) / "data" / "postmaster.pid").read_text().split()[0])
                if str(self.node_dir(i)).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)

    def postmaster_pid(self, i):
        return int((self.node_dir(i) / "data" / "postmaster.pid").read_text().split()[0])

    def index_of(self, name):
        return int(name[1:]) - 1 if name and name.startswith("p") and name[1:].isdigit() else None

    def server_of(self, name):
        """HAProxy's server name for a member name (p2 -> node2), None for no member."""
        i = self.index_of(name)
        return None if i is None else f"node{i + 1}"


class Client(threading.Thread):
    """A new connection per attempt through one HAProxy frontend, one attempt at a time, every `every` s.
    Each attempt: (start, end, ok, PostgreSQL port that answered or the error text, row id or None)."""

    def __init__(self, checker, kind, port, every):
        super().__init__(daemon=True, name=f"{kind}-{checker}")
        self.checker, self.kind, self.port, self.every = checker, kind, port, every
        self.log = []
        self.stop = threading.Event()
        self.next_id = 1
        self.lock = threading.Lock()

    def attempt(self):
        rid = None
        con = None
        try:
            con = psycopg2.connect(host="127.0.0.1", port=self.port, dbname="postgres", user="postgres",
                                   connect_timeout=2, options="-c statement_timeout=2000")
            cur = con.cursor()
            if self.kind == "write":
                rid = self.next_id
                self.next_id += 1
                cur.execute("INSERT INTO impact VALUES (%s, %s) RETURNING inet_server_port()", (self.checker, rid))
            else:
                cur.execute("SELECT inet_server_port()")
            port = cur.fetchone()[0]
            con.commit()
            return True, port, rid
        except psycopg2.Error as e:
            return False, " ".join(str(e).split())[:160], rid
        finally:
            if con is not None:
                try:
                    con.close()
                except psycopg2.Error:
                    pass

    def run(self):
        nxt = time.monotonic()
        while not self.stop.is_set():
            t0 = time.monotonic()
            ok, what, rid = self.attempt()
            with self.lock:
                self.log.append((t0, time.monotonic(), ok, what, rid))
            nxt = max(nxt + self.every, time.monotonic())
            time.sleep(max(0.0, nxt - time.monotonic()))

    def between(self, t0, t1):
        with self.lock:
            return [a for a in self.log if t0 <= a[0] < t1]


class Sampler(threading.Thread):
    """`show stat` of every HAProxy and the leader key, every ~20 ms: (t, leader before, {checker: {backend:
    {server: status}}}, leader after)."""

    def __init__(self, stack):
        super().__init__(daemon=True, name="sampler")
        self.stack = stack
        self.samples = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            before = self.stack.leader()
            st = {}
            for checker, h in self.stack.haproxy.items():
                try:
                    rows = h.show_stat()
                except Exception:  # noqa: BLE001 - a missed sample is no sample
                    continue
                st[checker] = {}
                for r in rows:
                    if r["svname"] not in ("FRONTEND", "BACKEND"):
                        st[checker].setdefault(r["pxname"], {})[r["svname"]] = r["status"]
            after = self.stack.leader()
            with self.lock:
                self.samples.append((time.monotonic(), before, st, after))
            time.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - t0)))

    def between(self, t0, t1):
        with self.lock:
            return [s for s in self.samples if t0 <= s[0] < t1]


class Probe(threading.Thread):
    """Each node's two checkers asked directly every ~50 ms, as HAProxy's checks ask them: Patroni's REST
    (HEAD /primary, /replica) and pgcheckd (the same paths over HTTP on its agent port). Each sample: (t,
    {(checker, node index, path): HTTP status or None})."""

    def __init__(self, stack):
        super().__init__(daemon=True, name="probe")
        self.stack = stack
        self.samples = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    @staticmethod
    def head(port, path):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def run(self):
        ports = {"patroni-rest": self.stack.rest, "pgcheckd": self.stack.agent_ports}
        while not self.stop.is_set():
            t0 = time.monotonic()
            got = {(c, i, path): self.head(ports[c][i], path)
                   for c in CHECKERS for i in range(N) for path in ("/primary", "/replica")}
            with self.lock:
                self.samples.append((t0, got))
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))

    def between(self, t0, t1):
        with self.lock:
            return [s for s in self.samples if t0 <= s[0] < t1]


def is_up(status):
    return status == "UP" or status.startswith("UP ")  # "UP 1/3" still takes connections


def error_kind(text):
    t = text.lower()
    for needle, kind in (("read-only transaction", "read-only"), ("connection refused", "refused"),
                         ("timeout expired", "connect-timeout"), ("statement timeout", "statement-timeout"),
                         ("closed the connection", "closed"), ("starting up", "starting-up"),
                         ("shutting down", "shutting-down"), ("recovery mode", "in-recovery"),
                         ("terminating connection", "terminated")):
        if needle in t:
            return kind
    return "other"


class Bench:
    def __init__(self, stack):
        self.s = stack
        self.clients = {}
        for checker, h in stack.haproxy.items():
            self.clients[(checker, "write")] = Client(checker, "write", h.write_port, WRITE_EVERY)
            self.clients[(checker, "read")] = Client(checker, "read", h.read_port, READ_EVERY)
        self.sampler = Sampler(stack)
        self.probe = Probe(stack)
        self.threads = list(self.clients.values()) + [self.sampler, self.probe]

    def start(self):
        for c in self.threads:
            c.start()

    def stop(self):
        for c in self.threads:
            c.stop.set()
        for c in self.threads:
            c.join(10)

    def steady(self, since):
        """The cluster and both HAProxy instances steady: one leader, Patroni's REST says so for every
        member, each write backend has exactly the leader UP, each read backend exactly the replicas, and the
        last attempts of every client (after since) succeeded, writes on the leader."""
        leader = self.s.leader()
        li = self.s.index_of(leader)
        if li is None or self.s.rest_status(li, "/primary") != 200:
            return None
        replicas = [i for i in range(N) if i != li]
        if any(self.s.rest_status(i, "/replica") != 200 for i in replicas):
            return None
        for checker, h in self.s.haproxy.items():
            try:
                w, r = h.states("primary"), h.states("replicas")
            except Exception:  # noqa: BLE001
                return None
            if sorted(k for k, v in w.items() if v[0] == "UP") != [f"node{li + 1}"]:
                return None
            if sorted(k for k, v in r.items() if v[0] == "UP") != [f"node{i + 1}" for i in replicas]:
                return None
        for (checker, kind), c in self.clients.items():
            last = c.between(since, float("inf"))[-5:]
            if len(last) < 5 or not all(a[2] for a in last):
                return None
            if kind == "write" and any(a[3] != self.s.pg_ports[li] for a in last):
                return None
        return leader

    def wait_steady(self, since, bound=SETTLE_S):
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            leader = self.steady(since)
            if leader:
                return leader, time.monotonic()
            time.sleep(0.1)
        return None, time.monotonic()

    def event(self, kind, rnd):
        """Run one event; return {checker: measurements} for it."""
        t_pre = time.monotonic()
        leader, _ = self.wait_steady(t_pre)
        if leader is None:
            raise RuntimeError(f"not steady before {kind} (round {rnd})")
        li = self.s.index_of(leader)
        target = None
        t0 = time.monotonic()
        if kind == "switchover":
            cand = self.s.name((li + 1) % N)
            r = subprocess.run([PATRONICTL, "-c", self.s.yml(li), "switchover", "--leader", leader, "--candidate",
                                cand, "--force"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                               env=cl._clean_env())
            what = f"{leader}->{cand} (patronictl rc {r.returncode})"
        elif kind == "leader-kill9":
            pid = self.s.postmaster_pid(li)
            os.kill(pid, signal.SIGKILL)
            what = f"postmaster of {leader} (pid {pid}) killed"
        else:
            target = (li + 1 + rnd % (N - 1)) % N
            r = subprocess.run([PATRONICTL, "-c", self.s.yml(li), "restart", SCOPE, self.s.name(target), "--force"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=cl._clean_env())
            what = f"{self.s.name(target)} restarted (patronictl rc {r.returncode})"
        after, t1 = self.wait_steady(t0)
        settled_ms = (t1 - t0) * 1000
        t_end = t1 + 0.5
        time.sleep(max(0.0, t_end - time.monotonic()))
        ai = self.s.index_of(after) if after else None
        what += f"; leader after: {after or 'none (not steady)'}, steady after {settled_ms:.0f} ms"
        samples = self.sampler.between(t0, t_end)
        probes = self.probe.between(t0, t_end)
        out = {}
        for checker in CHECKERS:
            writes = self.clients[(checker, "write")].between(t0, t_end)
            reads = self.clients[(checker, "read")].between(t0, t_end)
            m = {"what": what, "failed_reads": sum(1 for a in reads if not a[2]),
                 "failed_writes": sum(1 for a in writes if not a[2]),
                 "read_only_errors": sum(1 for a in writes if not a[2] and error_kind(a[3]) == "read-only"),
                 "errors": {}}
            for a in writes + reads:
                if not a[2]:
                    k = error_kind(a[3])
                    m["errors"][k] = m["errors"].get(k, 0) + 1
            # acknowledged writes missing from the leader (read directly, once the cluster is steady)
            acked = [a[4] for a in writes if a[2]]
            m["lost"] = None
            if acked and ai is not None:
                try:
                    con = psycopg2.connect(host="127.0.0.1", port=self.s.pg_ports[ai], dbname="postgres",
                                           user="postgres", connect_timeout=5)
                    cur = con.cursor()
                    cur.execute("SELECT id FROM impact WHERE checker = %s AND id = ANY(%s)", (checker, acked))
                    m["lost"] = len(set(acked) - {r[0] for r in cur.fetchall()})
                    con.close()
                except psycopg2.Error as e:
                    m["what"] += f"; lost writes not read: {e}"
            elif not acked:
                m["lost"] = 0
            # first successful write on the leader after the event, started after the event's start
            m["first_write_ms"] = None
            if kind != "replica-restart" and ai is not None:
                ok = [a for a in writes if a[2] and a[3] == self.s.pg_ports[ai]]
                if ok:
                    m["first_write_ms"] = (ok[0][1] - t0) * 1000
            # until HAProxy stops sending to the old leader (or, for a replica restart, to that replica)
            backend, srv = ("replicas", f"node{target + 1}") if target is not None else ("primary", f"node{li + 1}")
            # until the checker itself stops answering 200 for the old leader's /primary (the replica's /replica)
            path, node = ("/replica", target) if target is not None else ("/primary", li)
            m["check_ms"] = next(((t - t0) * 1000 for t, got in probes if got[(checker, node, path)] != 200), None)
            m["out_ms"] = None
            for t, _, st, _ in samples:
                s = st.get(checker, {}).get(backend, {}).get(srv)
                if s is not None and not is_up(s):
                    m["out_ms"] = (t - t0) * 1000
                    break
            # samples where the write backend had a server UP that the leader key (read just before or just
            # after the sample) did not name, or more than one UP
            wrong = two = 0
            for t, before, st, after_key in samples:
                up = [k for k, v in st.get(checker, {}).get("primary", {}).items() if is_up(v)]
                two += len(up) > 1
                named = {self.s.server_of(before), self.s.server_of(after_key)}
                wrong += any(u not in named for u in up)
            m["wrong"], m["two"], m["nsamples"] = wrong, two, len(samples)
            out[checker] = m
        return out


def fmt(ms):
    return "-" if ms is None else f"{ms:.0f} ms"


def ms_stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None, None
    return round(statistics.median(v), 1), round(max(v), 1)


def rows_from(results):
    rows = []
    for ev in EVENTS:
        for checker in CHECKERS:
            ms = [r[checker] for r in results.get(ev, [])]
            if not ms:
                continue
            fw = ms_stats([m["first_write_ms"] for m in ms])
            out = ms_stats([m["out_ms"] for m in ms])
            errors = {}
            for m in ms:
                for k, v in m["errors"].items():
                    errors[k] = errors.get(k, 0) + v
            notes = [f"round {i + 1}: {m['what']}" for i, m in enumerate(ms)]
            ck = ms_stats([m["check_ms"] for m in ms])
            notes.append(f"the checker answered the old leader's /primary (the replica's /replica) not 200 after "
                         f"{ck[0]} ms median, {ck[1]} max" if ck[0] is not None else
                         "the checker never answered the old leader's /primary (the replica's /replica) not 200")
            never_out = sum(1 for m in ms if m["out_ms"] is None)
            if never_out:
                notes.append(f"never out of HAProxy in {never_out} of {len(ms)} rounds")
            if errors:
                notes.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
            notes.append(f"samples with a write server UP the leader key did not name: {sum(m['wrong'] for m in ms)}, "
                         f"with two UP: {sum(m['two'] for m in ms)} (of {sum(m['nsamples'] for m in ms)})")
            lost = [m["lost"] for m in ms]
            rows.append({
                "event": ev, "checker": checker, "rounds": len(ms),
                "failed_reads": sum(m["failed_reads"] for m in ms),
                "failed_writes": sum(m["failed_writes"] for m in ms),
                "read_only_errors": sum(m["read_only_errors"] for m in ms),
                "lost_acked_writes": None if any(x is None for x in lost) else sum(lost),
                "first_write_ms_median": fw[0], "first_write_ms_max": fw[1],
                "out_ms_median": out[0], "out_ms_max": out[1],
                "notes": "; ".join(notes),
            })
    return rows


def run(rounds, out_dir):
    """Run the whole comparison (rounds of each event); return one row per (event, checker), also written as a
    table to out_dir/impact-patroni.txt (with the logs, in out_dir/impact-patroni-logs/, when it fails)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for tool in (PATRONI, PATRONICTL, ETCD, cl.HAPROXY_BIN, cl.PGCHECKD_BIN):
        if not os.access(tool, os.X_OK):
            raise RuntimeError(f"{tool} is not installed or not executable")
    stack = Stack()
    results = {}
    bench = None
    try:
        say(f"starting etcd, {N} Patroni members, {N} pgcheckd and two HAProxy in {stack.tmp}")
        t = time.monotonic()
        stack.start()
        say(f"started in {time.monotonic() - t:.1f} s; clients on")
        bench = Bench(stack)
        bench.start()
        for rnd in range(rounds):
            for ev in EVENTS:
                say(f"round {rnd + 1}/{rounds}: {ev}")
                r = bench.event(ev, rnd)
                say("  " + r["pgcheckd"]["what"] + "; " + ", ".join(
                    f"{c}: w-fail {r[c]['failed_writes']} r-fail {r[c]['failed_reads']} "
                    f"first-w {fmt(r[c]['first_write_ms'])} check-down {fmt(r[c]['check_ms'])} "
                    f"out {fmt(r[c]['out_ms'])}"
                    for c in CHECKERS))
                results.setdefault(ev, []).append(r)
    except Exception:
        keep = out_dir / "impact-patroni-logs"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(stack.tmp, keep, ignore=shutil.ignore_patterns("data", "etcd-data", "*.sock"),
                        ignore_dangling_symlinks=True)
        say(f"failed; logs kept in {keep}")
        raise
    finally:
        if bench is not None:
            bench.stop()
        stack.close()
        shutil.rmtree(stack.tmp, ignore_errors=True)
    rows = rows_from(results)
    (out_dir / "impact-patroni.txt").write_text(table(rows) + "\n")
    return rows


def table(rows):
    cols = [k for k in KEYS if k != "notes"]
    w = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(w[c]) for c in cols)]
    for r in rows:
        lines.append("  ".join(str(r[c]).ljust(w[c]) for c in cols))
    lines.append("")
    for r in rows:
        lines.append(f"{r['event']} / {r['checker']}: {r['notes']}")
    return "\n".join(lines)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    print(table(run(n, REPO / "build" / "bench")))
