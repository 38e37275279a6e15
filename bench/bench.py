#!/usr/bin/python3
"""bench.py: pgcheckd side by side with the health checkers users run today, in one run, as ratios.

`make bench` runs this. It starts its own PostgreSQL primary + 2 streaming replicas, one pgcheckd per
node and HAProxy (conf/haproxy.cfg) through tests/integration/cluster.py, and measures on the same
nodes, in the same run:

  limit         constd: a minimal libev responder that writes a constant line and closes (agent, HTTP)
  pgcheckd      over the agent line protocol and over HTTP
  conncheck     a new PostgreSQL connection + SELECT per request (the pgDoctor model; C, libpq)
  pgsqlchk      the classic xinetd script: one psql per request (xinetd, or socat when xinetd is missing)
  Patroni       Patroni's REST API (/primary, /replica) with Patroni + etcd from Debian (etcd3 on loopback)

  TLS           constd and pgcheckd (extra instances on node1) with TLS on the agent port and the HTTP
                port: a full handshake per check, with the last session offered (as HAProxy 2.6-3.3 do),
                and with a client certificate; ratios to the plain rows and to the TLS limit

For each: checks per second at 1, 4 and 32 concurrent clients for a fixed time, latency median, p99
and max, PostgreSQL cost per 1000 checks (sessions, queries, backend CPU, log lines), the checker's own
RSS and CPU, and ratios to pgcheckd. The agent line protocol is loaded by bench/agentload (C, epoll),
HTTP by wrk (bench/wrk-report.lua; agentload's HTTP mode when wrk is missing).

Then through HAProxy, once with pgcheckd (conf/haproxy.cfg) and once with the same timings and
pgsqlchk as the check (bench/haproxy-pgsqlchk.cfg): `pg_ctl promote` returning -> first write through
the write frontend (>= 10 rounds, the cluster re-pointed after each), SIGSTOP of a node's PostgreSQL ->
HAProxy marks it DOWN (and whether the checker keeps answering meanwhile), and how long a stopped
replica keeps getting reads.

Output: a plain-text table on stdout and in build/bench/results.txt, every figure in
build/bench/results.csv (perf profiles of pgcheckd and constd under load: build/bench/perf-*.txt).
Nothing here asserts a timing; --smoke (for `make check`, output in build/bench/smoke/) only checks that
the harness runs and writes its output.

Every process started here is stopped by PID at the end; every load loop is bounded in time.
"""

import argparse
import atexit
import csv
import datetime
import importlib.util
import json
import os
import platform
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
OUT = REPO / "build" / "bench"
TOOLS = OUT  # agentload, constd, conncheck are built here by bench/bench.mk
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
WRK = shutil.which("wrk")
PATRONI = shutil.which("patroni") or ("/usr/bin/patroni" if os.path.exists("/usr/bin/patroni") else None)
ETCD = shutil.which("etcd")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def load_cluster_module():
    """tests/integration/cluster.py, imported by path (it is a library, not a package)."""
    path = REPO / "tests" / "integration" / "cluster.py"
    spec = importlib.util.spec_from_file_location("cluster", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cluster"] = mod
    spec.loader.exec_module(mod)
    return mod


cl = load_cluster_module()
sys.path.insert(0, str(BENCH))
import impact  # noqa: E402 - bench/impact.py: the impact table, pgsqlchk under xinetd, table()
from impact import Pgsqlchk, table  # noqa: E402

T_START = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - T_START:6.1f}s] {msg}", flush=True)


NOTES = []  # what could not be measured, and why: printed with the table


def note(msg):
    NOTES.append(msg)
    say("NOTE: " + msg)


# ---------------------------------------------------------------------------------------------------
# processes: started here, stopped here by PID

_started = []  # Popen objects


def start_proc(cmd, log, as_pg=False, env=None, cpus=None):
    logf = open(log, "ab")
    kw = {}
    if as_pg and os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    try:
        p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True, env=env, **kw)
    finally:
        logf.close()
    _started.append(p)
    if cpus is not None:
        try:
            os.sched_setaffinity(p.pid, cpus)
        except OSError:
            pass
    return p


def stop_proc(p, timeout=10, sig=signal.SIGTERM):
    """Stop one process we started (by PID), then any descendants it left behind (by PID)."""
    if p is None:
        return
    kids = cl.descendants(p.pid) if p.poll() is None else []
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        except ProcessLookupError:
            pass
    for k in kids:
        if cl.pid_alive(k):
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _stop_all():
    for p in reversed(_started):
        try:
            stop_proc(p, timeout=5)
        except Exception:  # noqa: BLE001
            pass


atexit.register(_stop_all)


def wait_port(port, timeout=15, proc=None, what="port"):
    def ok():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        return cl.port_accepts(port)
    cl.wait_until(ok, timeout, desc=f"{what} to listen on {port}")


# ---------------------------------------------------------------------------------------------------
# /proc: CPU and memory of a process tree


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17 -> indexes 11..14
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def tree_pids(root, exclude=()):
    """root and its descendants, leaving out the subtrees rooted at any pid in exclude."""
    kids = cl._children_map()
    out, todo = [], [root]
    excl = set(exclude)
    while todo:
        p = todo.pop()
        if p in excl:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(root, exclude=()):
    """CPU seconds of a process tree: the root's own and its reaped children's (cutime/cstime), plus
    every live descendant's own. Exited descendants land in their parent's cutime, so deltas of this
    count every process that ran in the tree."""
    if not root or not cl.pid_alive(root):
        return 0.0
    total = 0
    for i, pid in enumerate(tree_pids(root, exclude)):
        try:
            u, s, cu, cs = _stat(pid)
        except (OSError, ValueError, IndexError):
            continue
        total += u + s + cu + cs  # cu/cs of a live child only hold its own reaped children
    return total / CLK_TCK


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def smaps_rollup_kb(pid, key):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_by_mapping(pid, top=6):
    """[(file or [anon], RSS kB)] of one process, largest first (from /proc/PID/smaps)."""
    sizes = {}
    name = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                    name = os.path.basename(parts[5]) if len(parts) >= 6 else "[anon]"
                elif parts[0] == "Rss:" and name is not None:
                    sizes[name] = sizes.get(name, 0) + int(parts[1])
    except OSError:
        return []
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:top]


def tree_rss_kb(root, exclude=()):
    if not root:
        return 0
    return sum(status_kb(p, "VmRSS") for p in tree_pids(root, exclude))


class RssSampler:
    """Samples a tree's RSS every 100 ms in a thread; keeps the maximum."""

    def __init__(self, root_fn, exclude_fn):
        self.root_fn, self.exclude_fn = root_fn, exclude_fn
        self.max_kb = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.max_kb = max(self.max_kb, tree_rss_kb(self.root_fn(), self.exclude_fn()))
            except Exception:  # noqa: BLE001
                pass
            self.stop_ev.wait(0.1)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join(2)


# ---------------------------------------------------------------------------------------------------
# PostgreSQL cost: sessions, queries, backend CPU, log lines

SNAP_SQL = (
    "SELECT pg_stat_clear_snapshot() AS bench_stats_clear,"
    " (SELECT coalesce(sum(sessions), 0) FROM pg_stat_database) AS bench_stats_sessions,"
    " (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query NOT LIKE '%%bench_stats_%%')"
    "   AS bench_stats_calls,"
    # pgcheckd's sampler: its one statement (and, once per session, its SET and system id lines)
    " (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%%LEFT JOIN pg_stat_wal_receiver w%%'"
    "   OR query LIKE 'SET statement_timeout%%' OR query LIKE 'SET lock_timeout%%'"
    "   OR query LIKE '%%FROM pg_control_system()%%') AS bench_stats_sampler"
)


class PgTarget:
    """A PostgreSQL server whose cost we count: a persistent stats session, its postmaster, its log."""

    def __init__(self, name, connect_kw, pid_fn, log_fn):
        self.name = name
        self.connect_kw = connect_kw
        self.pid_fn = pid_fn
        self.log_fn = log_fn
        self.conn = None

    def _conn(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(dbname="postgres", user="postgres", connect_timeout=5,
                                         application_name="bench-stats", **self.connect_kw)
            self.conn.autocommit = True
        return self.conn

    def log_lines(self):
        """Lines in the server log, less the checkpointer's routine "checkpoint starting/complete"
        lines (log_checkpoints is on by default and has nothing to do with checks)."""
        try:
            with open(self.log_fn(), "rb") as f:
                data = f.read()
        except OSError:
            return 0
        return data.count(b"\n") - data.count(b"LOG:  checkpoint ")

    def snapshot(self):
        with self._conn().cursor() as cur:
            cur.execute(SNAP_SQL)
            _, sessions, calls, sampler = cur.fetchone()
        return {"sessions": int(sessions), "queries": int(calls), "sampler": int(sampler),
                "cpu": tree_cpu(self.pid_fn()), "log": self.log_lines()}

    def close(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.close()


# ---------------------------------------------------------------------------------------------------
# load generators


def merge_hist(into, hist):
    for v, c in hist:
        into[v] = into.get(v, 0) + c


def hist_pct(hist, p):
    total = sum(hist.values())
    if total == 0:
        return None
    want = max(1, int(total * p / 100.0 + 0.999999))
    seen = 0
    for v in sorted(hist):
        seen += hist[v]
        if seen >= want:
            return v
    return max(hist)


LOAD_CPU = None   # CPU the load generator is pinned to (the last one), None when there is only one
SERVER_CPU = None


def run_agentload(port, conns, seconds, request="primary\n", expect="up", http_path=None, pause_ms=0,
                  timeout_ms=2000, pin=True, tls=None, count=0):
    """tls: None (plain TCP), or {"ca": CA file, "resume": bool, "cert"/"key": a client certificate}: a TLS
    handshake per check."""
    cmd = []
    if pin and LOAD_CPU is not None:
        cmd = ["taskset", "-c", str(LOAD_CPU)]
    cmd += [str(TOOLS / "agentload"), "-p", str(port), "-c", str(conns), "-d", str(seconds), "-t", str(timeout_ms)]
    if tls is not None:
        cmd += ["--tls", "--ca", str(tls["ca"])] + (["--resume"] if tls.get("resume") else [])
        if tls.get("cert"):
            cmd += ["--cert", str(tls["cert"]), "--key", str(tls["key"])]
    if http_path:
        cmd += ["--http", http_path]
    else:
        cmd += ["-r", request.replace("\n", "\\n"), "-e", expect]
    if pause_ms:
        cmd += ["-i", str(pause_ms)]
    if count:
        cmd += ["-n", str(count)]
    r = subprocess.run(cmd, capture_output=True, timeout=seconds + timeout_ms / 1000 + 30)
    if r.returncode != 0:
        raise RuntimeError(f"agentload failed: {r.stderr.decode()}")
    lines = r.stdout.decode().splitlines()
    res = json.loads(lines[0])
    res["hist"] = json.loads(lines[1])["hist"]
    res["errors_total"] = res["errors"] + res["timeouts"] + res["other"]
    return res


def run_wrk(port, path, conns, seconds):
    cmd = []
    if LOAD_CPU is not None:
        cmd = ["taskset", "-c", str(LOAD_CPU)]
    seconds = max(1, int(round(seconds)))  # wrk takes whole seconds
    cmd += [WRK, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s", str(BENCH / "wrk-report.lua"),
            f"http://127.0.0.1:{port}{path}"]
    r = subprocess.run(cmd, capture_output=True, timeout=seconds + 60)
    line = next((l for l in r.stdout.decode().splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({r.returncode}): {r.stdout.decode()[-500:]} {r.stderr.decode()[-500:]}")
    d = json.loads(line[len("WRKJSON "):])
    secs = d["duration_us"] / 1e6
    # An answer without Content-Length (Patroni's) ends when the server closes; wrk counts that close
    # as a read error although the answer is complete and counted. Only read errors beyond one per
    # answer are failures.
    errs = d["connect_errors"] + max(0, d["read_errors"] - d["requests"]) + d["write_errors"] + d["timeouts"]
    # wrk counts non-2xx answers as requests too; only 2xx are checks that passed
    ok = d["requests"] - d["status_errors"]
    return {"requests": ok, "other": d["status_errors"], "errors": errs, "timeouts": d["timeouts"], "seconds": secs,
            "rps": ok / secs if secs else 0.0, "hist": d["hist"], "max_us": d["max_us"],
            "errors_total": errs + d["status_errors"], "read_errors": d["read_errors"],
            # wrk stops with a request outstanding on each connection: the checker still serves it
            "inflight": conns}


# ---------------------------------------------------------------------------------------------------
# the checkers under test


class Checker:
    """One health checker: how to load it, which process tree is it, which PostgreSQL it costs."""

    def __init__(self, key, label, kind, port, request, expect, root_fn, pg, ref, exclude_fn=lambda: (),
                 pin_server=False, tls=None, tool=None):
        self.key, self.label, self.kind, self.port = key, label, kind, port
        self.request, self.expect = request, expect
        self.root_fn, self.exclude_fn, self.pg, self.ref = root_fn, exclude_fn, pg, ref
        self.pin_server = pin_server
        self.tls = tls  # None, or run_agentload's tls argument
        # HTTP: wrk by default; agentload (latency from connect to close, with the TLS handshake) on request
        self.tool = tool or ("agentload" if kind == "agent" or not WRK else "wrk")

    def load(self, conns, seconds):
        if self.kind == "agent":
            return run_agentload(self.port, conns, seconds, request=self.request, expect=self.expect, tls=self.tls)
        if self.tool == "wrk":
            return run_wrk(self.port, self.request, conns, seconds)
        return run_agentload(self.port, conns, seconds, http_path=self.request, tls=self.tls)

    def probe(self):
        """One client until the first answer (5 s at most): does it answer at all?"""
        return run_agentload(self.port, 1, 5.0, request=self.request, expect=self.expect or "",
                             http_path=self.request if self.kind == "http" else None, pin=False, tls=self.tls,
                             count=1)


class Series:
    """What one checker did at one concurrency, summed over its slices."""

    def __init__(self, checker, conns):
        self.checker, self.conns = checker, conns
        self.requests = self.errors = self.other = 0
        self.served = 0  # answered + abandoned in flight at the end: what the checker did work for
        self.seconds = 0.0
        self.hist = {}
        self.max_us = 0
        self.pg = {"sessions": 0, "queries": 0, "sampler": 0, "cpu": 0.0, "log": 0}
        self.cpu = 0.0
        self.wall = 0.0
        self.rss_kb = 0
        self.rss_anon_kb = 0
        self.pss_kb = 0
        self.maps = []
        self.handshakes = self.offered = self.resumed = 0
        self.tls = ""

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else 0.0

    def pct_ms(self, p):
        v = hist_pct(self.hist, p)
        return None if v is None else v / 1000.0

    @property
    def max_ms(self):
        return self.max_us / 1000.0


def measure_slice(series, seconds, settle=0.3):
    ch = series.checker
    root = ch.root_fn()
    old_aff = None
    if ch.pin_server and SERVER_CPU is not None and root:
        try:
            old_aff = os.sched_getaffinity(root)
            os.sched_setaffinity(root, {SERVER_CPU})
        except OSError:
            old_aff = None
    try:
        before = ch.pg.snapshot()
        w0 = time.monotonic()
        cpu0 = tree_cpu(root, ch.exclude_fn())
        with RssSampler(ch.root_fn, ch.exclude_fn) as rs:
            res = ch.load(series.conns, seconds)
        cpu1 = tree_cpu(ch.root_fn(), ch.exclude_fn())
        time.sleep(settle)  # sessions are counted when their backend exits
        after = ch.pg.snapshot()
        series.wall += time.monotonic() - w0
    finally:
        if old_aff is not None:
            try:
                os.sched_setaffinity(root, old_aff)
            except OSError:
                pass
    series.requests += res["requests"]
    series.errors += res["errors"]
    series.other += res["other"]
    series.served += res["requests"] + res["other"] + res.get("inflight", 0)
    series.seconds += res["seconds"]
    merge_hist(series.hist, res["hist"])
    series.max_us = max(series.max_us, res["max_us"])
    for k in ("handshakes", "offered", "resumed"):
        setattr(series, k, getattr(series, k) + res.get(k, 0))
    series.tls = series.tls or res.get("tls", "")
    for k in series.pg:
        series.pg[k] += after[k] - before[k]
    series.cpu += cpu1 - cpu0
    series.rss_kb = max(series.rss_kb, rs.max_kb)
    root = ch.root_fn()
    if root:
        series.rss_anon_kb = max(series.rss_anon_kb, status_kb(root, "RssAnon"))
        series.pss_kb = max(series.pss_kb, sum(smaps_rollup_kb(p, "Pss") for p in tree_pids(root, ch.exclude_fn())))
        series.maps = rss_by_mapping(root)
    return res


# ---------------------------------------------------------------------------------------------------
# Patroni + etcd


class PatroniCluster:
    """etcd (v3 API on loopback) and two Patroni nodes (leader + replica) with their own PostgreSQL."""

    def __init__(self, tmp):
        self.tmp = tmp / "patroni"
        self.tmp.mkdir()
        os.chmod(self.tmp, 0o755)
        pw = pwd.getpwnam("postgres")
        os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        ports = cl.free_ports(6)
        self.etcd_port, self.etcd_peer = ports[0], ports[1]
        self.rest = ports[2:4]
        self.pg_ports = ports[4:6]
        self.etcd = None
        self.nodes = []
        self.version = ""

    def node_dir(self, i):
        return self.tmp / f"p{i + 1}"

    def postmaster_pid(self, i):
        try:
            return int((self.node_dir(i) / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pg_log(self, i):
        return self.node_dir(i) / "log" / "postgresql.log"

    def config(self, i):
        d = self.node_dir(i)
        return f"""scope: bench
namespace: /bench/
name: p{i + 1}
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:{self.rest[i]}
  connect_address: 127.0.0.1:{self.rest[i]}
etcd3:
  hosts: 127.0.0.1:{self.etcd_port}
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: 50
        max_wal_senders: 10
        max_replication_slots: 10
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
  bin_dir: {PG_BIN}
  pgpass: {d / 'pgpass'}
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: '{d}'
    fsync: "off"
    synchronous_commit: "off"
    full_page_writes: "off"
    shared_buffers: 16MB
    max_wal_size: 64MB
    shared_preload_libraries: pg_stat_statements
    log_connections: "on"
    log_disconnections: "on"
    log_min_messages: warning
    logging_collector: "on"
    log_directory: '{d / 'log'}'
    log_filename: postgresql.log
    log_line_prefix: '%m [%p] %a '
  pg_hba:
    - local all all trust
    - local replication all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
"""

    def start(self, timeout=90):
        r = subprocess.run([PATRONI, "--version"], capture_output=True, timeout=30)
        self.version = r.stdout.decode().strip()
        edir = self.tmp / "etcd"
        self.etcd = start_proc([ETCD, "--name", "bench", "--data-dir", edir,
                                "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                                "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                                "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                                "--initial-cluster", f"bench=http://127.0.0.1:{self.etcd_peer}",
                                "--logger", "zap", "--log-level", "warn"], self.tmp / "etcd.log")
        wait_port(self.etcd_port, 30, self.etcd, "etcd")
        pw = pwd.getpwnam("postgres")
        for i in range(2):
            d = self.node_dir(i)
            d.mkdir()
            (d / "log").mkdir()
            for p in (d, d / "log"):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(d, 0o700)
            cfg = d / "patroni.yml"
            cfg.write_text(self.config(i))
            os.chown(cfg, pw.pw_uid, pw.pw_gid)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "HOME": str(self.tmp)})
        env.pop("LANG", None)
        self.nodes.append(start_proc([PATRONI, self.node_dir(0) / "patroni.yml"], self.tmp / "patroni-p1.log",
                                     as_pg=True, env=env))
        cl.wait_until(lambda: self.http_status(0, "/primary") == 200, timeout, interval=0.2,
                      desc="Patroni p1 to lead")
        self.nodes.append(start_proc([PATRONI, self.node_dir(1) / "patroni.yml"], self.tmp / "patroni-p2.log",
                                     as_pg=True, env=env))
        cl.wait_until(lambda: self.http_status(1, "/replica") == 200, timeout, interval=0.2,
                      desc="Patroni p2 to run as a replica")
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_ports[0], user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.close()
        cl.wait_until(lambda: pg_has_pss(("127.0.0.1", self.pg_ports[1])), 30, desc="pg_stat_statements on p2")
        return self

    def http_status(self, i, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.rest[i]}{path}", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def patroni_pid(self, i):
        p = self.nodes[i] if i < len(self.nodes) else None
        return p.pid if p is not None and p.poll() is None else None

    def stop(self):
        for p in reversed(self.nodes):
            stop_proc(p, timeout=30)
        stop_proc(self.etcd, timeout=10)


def pg_has_pss(addr):
    conn = psycopg2.connect(host=addr[0], port=addr[1], user="postgres", dbname="postgres", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")
            return cur.fetchone()[0] == 1
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------
# the cluster

BENCH_PG_SETTINGS = (
    "\n# --- bench.py ---\n"
    "shared_preload_libraries = 'pg_stat_statements'\n"
    "log_connections = on\n"
    "log_disconnections = on\n"
)


def start_cluster():
    """cluster.py's primary + 2 replicas, pgcheckd per node, HAProxy; with pg_stat_statements and
    connection logging (what many production servers log) on every node."""
    orig = getattr(cl.PgNode, "_settings", None)
    patched = False
    if callable(orig):
        cl.PgNode._settings = lambda self: orig(self) + BENCH_PG_SETTINGS
        patched = True
    c = cl.Cluster(replicas=2, say=lambda m: say("cluster: " + m))
    c.start()
    if not patched or c.pg[0].sql1("SHOW shared_preload_libraries") != "pg_stat_statements":
        say("cluster: adding pg_stat_statements and connection logging, restarting the nodes")
        for node in c.pg:
            with open(node.datadir / "postgresql.conf", "a") as f:
                f.write(BENCH_PG_SETTINGS)
        for node in c.pg[1:] + c.pg[:1]:
            node.restart()
        c.wait_streaming(timeout=30)
        c.wait_routing(primary=0, replicas=[1, 2], timeout=30)
    c.pg[0].sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    for node in c.pg[1:]:
        cl.wait_until(lambda node=node: node.sql1("SELECT count(*) FROM pg_extension "
                                                  "WHERE extname = 'pg_stat_statements'") == 1, 30,
                      desc=f"pg_stat_statements on {node.name}")
    return c


def make_pki(d):
    """A CA and a server certificate for 127.0.0.1 (P-256, as tests/integration/test_tls.py makes them),
    with the openssl CLI. Returns {"ca", "cert", "key"} paths."""
    d.mkdir(parents=True, exist_ok=True)

    def run(*args):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {args[0]}: {r.stderr.strip()[-300:]}")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=pgcheckd bench CA", "-days", "2")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-copy_extensions", "copy")
    os.chmod(d / "server.key", 0o600)  # pgcheckd refuses a key that group or others may read
    run("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=haproxy")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "client.pem", "-days", "2")
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key",
            "client_cert": d / "client.pem", "client_key": d / "client.key"}


def start_tls_pgcheckd(c, node, pki, verify_client=False):
    """Another pgcheckd on node's PostgreSQL with [tls] agent = true and http = true, on ports of its
    own (agent port, and http_listen for the HTTP port); verify_client = none, or required (ca_file =
    the bench CA) with verify_client. The plain pgcheckd keeps running, so that plain and TLS rows are
    measured in the same interleaved slices against the same PostgreSQL."""
    agent_port, http_port = cl.free_ports(2)
    conf = {"agent": {"http_listen": f"127.0.0.1:{http_port}"},
            "tls": {"cert_file": str(pki["cert"]), "key_file": str(pki["key"]), "agent": "true", "http": "true"}}
    if verify_client:
        conf["tls"].update({"ca_file": str(pki["ca"]), "verify_client": "required"})
    a = cl.Pgcheckd(c, node, agent_port, conf, name=f"pgcheckd-{node.name}-{'mtls' if verify_client else 'tls'}")
    a.start()
    a.http_port = http_port
    for port in (agent_port, http_port):
        wait_port(port, 10, a.proc, "pgcheckd with TLS")
    return a


def cluster_pg_target(node):
    return PgTarget(node.name, {"host": str(node.sockdir), "port": node.port}, lambda: node.pid, lambda: node.logfile)


# ---------------------------------------------------------------------------------------------------
# throughput phases

def throughput(groups, concurrencies, seconds, slices, series_out, smoke=False):
    """groups: lists of checkers run interleaved (slice by slice), so that the ones compared with each
    other see the same machine state. Fills series_out[(key, conns)]. smoke: agentload's series run
    0.2 s (wrk's unit is a whole second) and wait 0.1 s for PostgreSQL's counters, to keep `make
    bench-smoke` short."""
    for group in groups:
        for conns in concurrencies:
            for ch in group:
                series_out[(ch.key, conns)] = Series(ch, conns)
            for s in range(slices):
                for ch in group:
                    secs = min(seconds / slices, 0.2) if smoke and ch.tool == "agentload" else seconds / slices
                    res = measure_slice(series_out[(ch.key, conns)], secs, settle=0.1 if smoke else 0.3)
                    say(f"  {ch.key:16} c={conns:<3} slice {s + 1}/{slices}: {res['rps']:10.1f} checks/s "
                        f"errors {res['errors_total']}")


# ---------------------------------------------------------------------------------------------------
# through HAProxy


class HaproxyVariant:
    """One HAProxy in front of the cluster and what its checks ask (pgcheckd, or pgsqlchk)."""

    def __init__(self, key, label, haproxy, write_port, read_port, probe):
        self.key, self.label, self.haproxy = key, label, haproxy
        self.write_port, self.read_port = write_port, read_port
        self.probe = probe  # probe(node index, seconds) -> agentload result against the node's checker

    def states(self, backend):
        return self.haproxy.states(backend)

    def wait_routing(self, cluster, primary, replicas, timeout=30):
        want_p = {cluster.name(primary)}
        want_r = {cluster.name(i) for i in replicas}

        def ok():
            p = {s for s, (st, _) in self.states("be_primary").items() if st.startswith("UP")}
            r = {s for s, (st, _) in self.states("be_replicas").items() if st.startswith("UP")}
            return p == want_p and r == want_r
        cl.wait_until(ok, timeout, interval=0.05, desc=f"{self.key}: be_primary = {want_p}, be_replicas = {want_r}")


def fe_query(port, query, timeout=2):
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=timeout,
                            application_name="bench-probe")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def set_primary_conninfo(node, primary):
    """Rewrite node's postgresql.auto.conf (node stopped) so that it streams from primary."""
    auto = node.datadir / "postgresql.auto.conf"
    lines = [l for l in auto.read_text().splitlines()
             if not l.startswith(("primary_conninfo", "primary_slot_name"))]
    conninfo = f"host={primary.sockdir} port={primary.port} user=postgres application_name={node.name}"
    lines += [f"primary_conninfo = '{conninfo}'", f"primary_slot_name = '{node.name}'"]
    auto.write_text("\n".join(lines) + "\n")


def make_slot(primary, name):
    primary.sql("SELECT pg_create_physical_replication_slot(%s) WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (name, name))


def rejoin_as_replica(c, old, new):
    """The old primary (stopped cleanly, so the promoted replica had all its WAL) becomes a replica of
    the new one: standby.signal + primary_conninfo, start, drop the slots it had as a primary. A fresh
    pg_basebackup when that does not stream."""
    pw = pwd.getpwnam("postgres")
    make_slot(new, old.name)
    set_primary_conninfo(old, new)
    sig = old.datadir / "standby.signal"
    sig.touch()
    os.chown(sig, pw.pw_uid, pw.pw_gid)
    try:
        old.start(timeout=60)
        cl.wait_until(old.streaming, 20, interval=0.1, desc=f"{old.name} to stream from {new.name}")
    except Exception as e:  # noqa: BLE001
        say(f"  {old.name} did not rejoin ({str(e).splitlines()[0]}); pg_basebackup from {new.name}")
        old.stop(mode="immediate")
        new.sql("SELECT pg_drop_replication_slot(%s) FROM pg_replication_slots WHERE slot_name = %s AND NOT active",
                (old.name, old.name))
        shutil.rmtree(old.datadir)
        old.basebackup_from(new)
        old.start(timeout=60)
        cl.wait_until(old.streaming, 30, interval=0.1, desc=f"{old.name} to stream after pg_basebackup")
    try:
        old.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active")
    except Exception:  # noqa: BLE001
        pass


def promote_round(c, v, roles):
    """One promotion: stop the primary, wait until HAProxy has it DOWN, promote the first replica,
    time the first write through the write frontend, then re-point the cluster. roles = [primary, r1, r2]
    (indexes), updated in place."""
    p, r1, r2 = roles
    old, new, other = c.pg[p], c.pg[r1], c.pg[r2]
    old.stop()
    cl.wait_until(lambda: v.states("be_primary")[c.name(p)][0].startswith("DOWN"), 10, interval=0.02,
                  desc=f"{old.name} DOWN in be_primary")
    new.promote()
    t0 = time.monotonic()
    elapsed = None
    attempts = 0
    while time.monotonic() - t0 < 15:
        attempts += 1
        try:
            rows = fe_query(v.write_port, "INSERT INTO bench_writes (port) VALUES (inet_server_port()) "
                                          "RETURNING port", timeout=2)
            if rows and rows[0][0] == new.port:
                elapsed = time.monotonic() - t0
                break
        except psycopg2.Error:
            pass
        time.sleep(0.005)
    other.follow(new)
    rejoin_as_replica(c, old, new)
    cl.wait_until(other.streaming, 30, interval=0.1, desc=f"{other.name} to stream from {new.name}")
    roles[:] = [r1, r2, p]
    v.wait_routing(c, roles[0], roles[1:], timeout=30)
    return elapsed, attempts


def freeze_round(c, v, idx, control, backend, probe_seconds):
    """SIGSTOP node idx's PostgreSQL; time until HAProxy has it DOWN in backend. Meanwhile probe its
    checker, and at the same time the checker of a healthy node (control): one client each, a request
    every 10 ms, 1 s timeout. The control shows what the machine itself adds to the latency."""
    node = c.pg[idx]
    result = {}

    def probe(which, i):
        result[which] = v.probe(i, probe_seconds)
    threads = [threading.Thread(target=probe, args=("probe", idx)),
               threading.Thread(target=probe, args=("control", control))]
    node.freeze()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    down = None
    try:
        while time.monotonic() - t0 < 10:
            if v.states(backend)[c.name(idx)][0].startswith("DOWN"):
                down = time.monotonic() - t0
                break
            time.sleep(0.01)
        for t in threads:
            t.join(probe_seconds + 15)
    finally:
        node.thaw()
    return down, result.get("probe"), result.get("control")


def stop_replica_round(c, v, idx):
    """Stop a replica's PostgreSQL (fast shutdown) while a client opens read sessions through the read
    frontend; time until HAProxy has it DOWN in be_replicas, and count the reads that failed."""
    node = c.pg[idx]
    stop_ev = threading.Event()
    log = []  # (t, ok)

    def reader():
        while not stop_ev.is_set():
            t = time.monotonic()
            try:
                fe_query(v.read_port, "SELECT inet_server_port()", timeout=2)
                log.append((t, True))
            except psycopg2.Error:
                log.append((t, False))
            time.sleep(0.005)
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    node.stop()
    stopped = time.monotonic() - t0
    down = None
    while time.monotonic() - t0 < 10:
        if v.states("be_replicas")[c.name(idx)][0].startswith("DOWN"):
            down = time.monotonic() - t0
            break
        time.sleep(0.01)
    time.sleep(0.3)
    stop_ev.set()
    th.join(10)
    failed = [t - t0 for t, ok in log if not ok and t >= t0]
    total = len([1 for t, _ in log if t >= t0])
    node.start()
    return {"down": down, "stop_s": stopped, "failed": len(failed), "reads": total,
            "last_failed": max(failed) if failed else None}


def haproxy_phase(c, v, roles, rounds, freeze_rounds, stop_rounds, results):
    say(f"HAProxy with {v.label}: {rounds} promotions")
    key = v.key
    res = results.setdefault(key, {"promote": [], "promote_fail": 0, "freeze_primary": [], "freeze_replica": [],
                                   "probe_primary": [], "probe_replica": [], "stop": [], "probe_baseline": []})
    v.wait_routing(c, roles[0], roles[1:], timeout=30)
    for i in range(rounds):
        elapsed, attempts = promote_round(c, v, roles)
        if elapsed is None:
            res["promote_fail"] += 1
            say(f"  round {i + 1}: no write within 15 s")
        else:
            res["promote"].append(elapsed)
            say(f"  round {i + 1}: first write {elapsed * 1000:.0f} ms after pg_ctl promote returned "
                f"({attempts} attempts); primary now {c.name(roles[0])}")
    for i in range(freeze_rounds):
        for which, idx, control, backend in (("primary", roles[0], roles[2], "be_primary"),
                                             ("replica", roles[1], roles[2], "be_replicas")):
            v.wait_routing(c, roles[0], roles[1:], timeout=30)
            down, probe, ctl = freeze_round(c, v, idx, control, backend, probe_seconds=3)
            res[f"freeze_{which}"].append(down)
            res[f"probe_{which}"].append(probe)
            res["probe_baseline"].append(ctl)
            down_txt = "-" if down is None else f"{down * 1000:.0f} ms"
            say(f"  freeze {which} {c.name(idx)}: DOWN in {backend} after {down_txt}; "
                f"checker answered {probe['requests'] + probe['other']}"
                f" of {probe['requests'] + probe['other'] + probe['errors'] + probe['timeouts']} probes, "
                f"max {probe['max_us'] / 1000:.1f} ms (healthy {c.name(control)} meanwhile: max "
                f"{ctl['max_us'] / 1000:.1f} ms)")
    for i in range(stop_rounds):
        v.wait_routing(c, roles[0], roles[1:], timeout=30)
        idx = roles[1 + i % 2]
        r = stop_replica_round(c, v, idx)
        res["stop"].append(r)
        down_txt = "-" if r["down"] is None else f"{r['down'] * 1000:.0f} ms"
        say(f"  stopped replica {c.name(idx)}: DOWN in be_replicas after {down_txt} (fast shutdown took "
            f"{r['stop_s'] * 1000:.0f} ms); {r['failed']} of {r['reads']} reads failed meanwhile")
    v.wait_routing(c, roles[0], roles[1:], timeout=30)


# ---------------------------------------------------------------------------------------------------
# report


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.{max(0, nd - 1)}f}" if nd else f"{v:.0f}"
    if abs(v) >= 0.1:
        return f"{v:.{nd + 1}f}" if nd else f"{v:.0f}"
    return f"{v:.3g}"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def tls_report(series, concurrencies, rec):
    """The TLS rows as ratios within the run: pgcheckd with TLS to pgcheckd plain (same port type, same
    load generator, same slices) and to the TLS constant-answer limit; the TLS limit to the plain one."""
    def get(key, n):
        s = series.get((key, n))
        return s if s is not None and s.requests else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    rows = []
    specs = (("agent port", "pgcheckd-agent", "pgcheckd-agent-tls", "constd-agent", "constd-agent-tls"),
             ("agent port, resumption offered", "pgcheckd-agent", "pgcheckd-agent-tls-resume", "constd-agent",
              "constd-agent-tls-resume"),
             ("agent port, client certificate", "pgcheckd-agent", "pgcheckd-agent-mtls", "constd-agent",
              "constd-agent-mtls"),
             ("HTTP port", "pgcheckd-http-al", "pgcheckd-http-tls", "constd-http-al", "constd-http-tls"))
    for what, plain, tls, lim, tlim in specs:
        for n in concurrencies:
            p, t, l, tl = get(plain, n), get(tls, n), get(lim, n), get(tlim, n)
            if t is None:
                continue
            r_plain = ratio(t.rps, p.rps if p else None)
            r_tlim = ratio(t.rps, tl.rps if tl else None)
            r_lim = ratio(t.rps, l.rps if l else None)
            r_limits = ratio(tl.rps if tl else None, l.rps if l else None)
            p99 = t.pct_ms(99)
            p99_plain = p.pct_ms(99) if p else None
            p99_tlim = tl.pct_ms(99) if tl else None
            resumed = f"{t.resumed / t.handshakes * 100:.0f}%" if t.handshakes else "-"
            lim_resumed = f"{tl.resumed / tl.handshakes * 100:.0f}%" if tl and tl.handshakes else "-"
            rows.append([what, n, fmt(p.rps if p else None, 0), fmt(t.rps, 0), fmt(r_plain, 2),
                         fmt(tl.rps if tl else None, 0), fmt(r_tlim, 2), fmt(r_lim, 3), fmt(r_limits, 3),
                         fmt(p99_plain, 2), fmt(p99, 2), fmt(ratio(p99, p99_plain), 1), fmt(p99_tlim, 2),
                         f"{resumed} / {lim_resumed}"])
            key = {"pgcheckd-agent-tls": "agent", "pgcheckd-agent-tls-resume": "agent-resume",
                   "pgcheckd-agent-mtls": "agent-client-cert", "pgcheckd-http-tls": "http"}[tls]
            for m, v, unit in (("checks_per_s", t.rps, "1/s"), ("vs_plain_pgcheckd", r_plain, "ratio"),
                               ("vs_tls_limit", r_tlim, "ratio"), ("vs_plain_limit", r_lim, "ratio"),
                               ("tls_limit_vs_plain_limit", r_limits, "ratio"), ("latency_p99", p99, "ms"),
                               ("latency_p99_plain", p99_plain, "ms"),
                               ("latency_p99_vs_plain", ratio(p99, p99_plain), "ratio"),
                               ("latency_p99_tls_limit", p99_tlim, "ms"),
                               ("sessions_resumed", t.resumed, ""), ("handshakes", t.handshakes, ""),
                               ("limit_sessions_resumed", tl.resumed if tl else None, ""),
                               ("limit_handshakes", tl.handshakes if tl else None, "")):
                rec("tls", key, n, m, v, unit)
    if not rows:
        return []
    proto = next((series[k].tls for k in series if series[k].tls), "")
    out = [f"TLS (every check a new connection and handshake: {proto or 'TLS'}, P-256 certificates, the "
           "client verifies the server's; agentload for all rows here, latency from connect to close, so with the "
           "handshake)"]
    out.append(table(["port", "clients", "plain checks/s", "TLS checks/s", "TLS/plain", "TLS limit checks/s",
                      "TLS/TLS limit", "TLS/plain limit", "TLS limit/plain limit", "plain p99 ms", "TLS p99 ms",
                      "p99 x", "TLS limit p99 ms", "resumed: pgcheckd / limit"], rows))
    out.append("  TLS limit: constd with pgcheckd's TLS settings (no session cache, no tickets); on the resumption "
               "rows it keeps a session cache and issues tickets, and agentload offers the last session, as "
               "HAProxy 2.6 to 3.3 do for check-ssl; pgcheckd resumes none (no cache, no tickets), so its row "
               "is a full handshake per check either way")
    out.append("")
    return out


def report(args, checkers, series, concurrencies, hap, settings, elapsed_s):
    csv_rows = []

    def rec(section, checker, clients, metric, value, unit=""):
        csv_rows.append([section, checker, clients, metric, "" if value is None else
                         (f"{value:.6g}" if isinstance(value, float) else value), unit])

    for k, v in settings.items():
        rec("settings", "", "", k, v)

    out = []
    out.append(f"pgcheckd benchmark, {settings['date']}: `{settings['command']}`")
    pin = (f"load generator pinned to CPU {settings['load_cpu']}, constd and pgcheckd to CPU "
           f"{settings['server_cpu']}" if settings["load_cpu"] is not None else "no CPU pinning")
    out.append(f"{settings['cpus']} CPUs ({settings['cpu_model']}), Linux {settings['kernel']}, "
               f"load average at start {settings['loadavg_at_start']}; PostgreSQL {settings['postgresql']}, "
               f"HAProxy {settings['haproxy']}, {settings['patroni']}, pgsqlchk under {settings['pgsqlchk_server']}")
    if settings.get("only", "all") == "all":
        out.append(f"{settings['seconds']} s per checker and client count, in {settings['slices']} slices interleaved "
                   f"with the checker it is compared to; {pin}; HTTP load: {settings['http_load']}; "
                   f"{settings['promotion_rounds']} promotions, {settings['freeze_rounds']} freezes of a primary and "
                   f"of a replica, {settings['stop_rounds']} replica stops per HAProxy configuration; the run took "
                   f"{elapsed_s / 60:.1f} min")
    else:
        out.append(f"only {settings['only']}: constd and pgcheckd, plain and with TLS, {settings['seconds']} s per "
                   f"checker and client count, in {settings['slices']} slices interleaved with the checkers it is "
                   f"compared to; {pin}; no HAProxy phase; the run took {elapsed_s / 60:.1f} min")
    out.append("")

    # throughput and latency
    rows = []
    for ch in checkers:
        for n in concurrencies:
            s = series.get((ch.key, n))
            if s is None:
                continue
            ref = series.get((ch.ref, n))
            ratio = (ref.rps / s.rps) if (ref and s.rps) else None
            rows.append([ch.label, n, fmt(s.rps, 0), fmt(ratio, 2) if ch.key != ch.ref else "1",
                         fmt(s.pct_ms(50), 2), fmt(s.pct_ms(99), 2), fmt(s.max_ms, 1), s.errors + s.other])
            rec("load", ch.key, n, "checks_per_s", s.rps, "1/s")
            rec("load", ch.key, n, "pgcheckd_over_this", ratio, "ratio")
            rec("load", ch.key, n, "latency_p50", s.pct_ms(50), "ms")
            rec("load", ch.key, n, "latency_p99", s.pct_ms(99), "ms")
            rec("load", ch.key, n, "latency_max", s.max_ms, "ms")
            if ref and ref.requests and s.requests:
                rec("load", ch.key, n, "latency_p50_vs_pgcheckd", s.pct_ms(50) / ref.pct_ms(50), "ratio")
                rec("load", ch.key, n, "latency_p99_vs_pgcheckd", s.pct_ms(99) / ref.pct_ms(99), "ratio")
            rec("load", ch.key, n, "checks", s.requests, "")
            rec("load", ch.key, n, "errors_or_non_200", s.errors + s.other, "")
            rec("load", ch.key, n, "seconds", s.seconds, "s")
    out.append("Checks per second and latency (connect-per-check; agent line: agentload, latency from connect "
               "to close; HTTP: " + ("wrk, latency from request to answer" if WRK else "agentload") + ")")
    out.append(table(["checker", "clients", "checks/s", "pgcheckd x", "p50 ms", "p99 ms", "max ms", "errors"], rows))
    out.append("  pgcheckd x = pgcheckd's checks/s (same protocol, same clients) / this checker's; for the limit "
               "rows read it as pgcheckd's fraction of the limit")
    out.append("")
    out.extend(tls_report(series, concurrencies, rec))

    # cost
    rows = []
    costs = {}
    for ch in checkers:
        ss = [series[(ch.key, n)] for n in concurrencies if (ch.key, n) in series]
        if not ss:
            continue
        checks = sum(s.served for s in ss)
        secs = sum(s.seconds for s in ss)
        if checks == 0:
            continue
        per_k = 1000.0 / checks
        sessions = sum(s.pg["sessions"] for s in ss) * per_k
        queries_all = sum(s.pg["queries"] for s in ss)
        sampler = sum(s.pg["sampler"] for s in ss)
        wall = sum(s.wall for s in ss)
        queries = (queries_all - sampler) * per_k
        pgcpu = sum(s.pg["cpu"] for s in ss) * per_k * 1000.0
        logl = sum(s.pg["log"] for s in ss) * per_k
        cpu_us = sum(s.cpu for s in ss) / checks * 1e6
        cpu_pct = sum(s.cpu for s in ss) / secs * 100 if secs else None
        rss = max(s.rss_kb for s in ss) / 1024.0
        anon = max(s.rss_anon_kb for s in ss) / 1024.0
        pss = max(s.pss_kb for s in ss) / 1024.0
        costs[ch.key] = dict(sessions=sessions, queries=queries, pgcpu=pgcpu, log=logl, cpu_us=cpu_us, cpu_pct=cpu_pct,
                             rss=rss, anon=anon, pss=pss, sampler_per_s=sampler / wall if wall else 0, checks=checks,
                             maps=ss[-1].maps)
    for ch in checkers:
        k = costs.get(ch.key)
        if k is None:
            continue
        ref = costs.get(ch.ref)
        cpu_ratio = k["cpu_us"] / ref["cpu_us"] if ref and ref["cpu_us"] else None
        rss_ratio = k["rss"] / ref["rss"] if ref and ref["rss"] else None
        rows.append([ch.label, fmt(k["sessions"], 1), fmt(k["queries"], 1), fmt(k["pgcpu"], 1), fmt(k["log"], 1),
                     fmt(k["cpu_us"], 1), fmt(cpu_ratio, 1) if ch.key != ch.ref else "1", fmt(k["rss"], 1),
                     fmt(rss_ratio, 1) if ch.key != ch.ref else "1"])
        for m, unit in (("sessions", "per 1000 checks"), ("queries", "per 1000 checks"), ("pgcpu", "ms per 1000 checks"),
                        ("log", "lines per 1000 checks"), ("cpu_us", "us per check"), ("cpu_pct", "% of one CPU"),
                        ("rss", "MB (max)"), ("anon", "MB anonymous (max)"), ("pss", "MB proportional (max)"),
                        ("sampler_per_s", "sampler queries/s")):
            rec("cost", ch.key, "all", {"sessions": "pg_sessions", "queries": "pg_queries_by_checks",
                                        "pgcpu": "pg_cpu", "log": "pg_log_lines", "cpu_us": "checker_cpu",
                                        "cpu_pct": "checker_cpu_share", "rss": "checker_rss",
                                        "anon": "checker_rss_anon", "pss": "checker_pss",
                                        "sampler_per_s": "pgcheckd_sampler_queries"}[m],
                k[m], unit)
        rec("cost", ch.key, "all", "cpu_vs_pgcheckd", cpu_ratio, "ratio")
        rec("cost", ch.key, "all", "rss_vs_pgcheckd", rss_ratio, "ratio")
    out.append("Cost, per 1000 checks over all runs of a checker (PostgreSQL: on the node it asks; queries "
               "exclude pgcheckd's sampler, which runs anyway)")
    out.append(table(["checker", "PG sessions", "PG queries", "PG CPU ms", "PG log lines", "own CPU us/check",
                      "x pgcheckd", "own RSS MB", "x pgcheckd"], rows))
    pt = costs.get("pgcheckd-agent-tls")
    pc = costs.get("pgcheckd-agent") or costs.get("pgcheckd-http")
    if pt and pc:
        for m in ("rss", "pss", "anon"):
            rec("tls", "pgcheckd-tls", "all", f"{m}_vs_plain", pt[m] / pc[m] if pc[m] else None, "ratio")
    if pc:
        out.append(f"  pgcheckd's sampler meanwhile: {pc['sampler_per_s']:.1f} queries/s, one session per pgcheckd on "
                   f"node1 (the plain one and the TLS instances; not counted above)")
        out.append(f"  pgcheckd's memory: RSS {pc['rss']:.1f} MB, PSS {pc['pss']:.1f} MB, anonymous "
                   f"{pc['anon']:.2f} MB; largest mappings (RSS kB): "
                   + ", ".join(f"{n} {kb}" for n, kb in pc["maps"]))
    if pt:
        # the TLS instance's maximum over all its rows (agent line, resumption offered, HTTPS)
        tk = [costs[k] for k in ("pgcheckd-agent-tls", "pgcheckd-agent-tls-resume", "pgcheckd-http-tls",
                                 "pgcheckd-agent-mtls") if k in costs]
        rss, pss, anon = (max(k[m] for k in tk) for m in ("rss", "pss", "anon"))
        for m, v in (("rss", rss), ("pss", pss), ("anon", anon)):
            rec("tls", "pgcheckd-tls", "all", f"max_{m}", v, "MB")
        out.append(f"  pgcheckd with TLS on (instances of their own on node1, [tls] agent and http): RSS {rss:.1f} MB, PSS "
                   f"{pss:.1f} MB, anonymous {anon:.2f} MB (max over its TLS rows); largest mappings (RSS kB): "
                   + ", ".join(f"{n} {kb}" for n, kb in pt["maps"]))
    if "perf_pgcheckd_kernel_pct" in settings:
        out.append(f"  perf under 32 clients: pgcheckd spends {settings['perf_pgcheckd_kernel_pct']:.0f}% of its CPU "
                   f"in the kernel (TCP connect, accept, close, epoll) and {settings['perf_pgcheckd_own_code_pct']:.1f}% "
                   f"in its own code; constd {settings.get('perf_constd_kernel_pct', 0):.0f}% in the kernel "
                   f"(build/bench/perf-pgcheckd.txt, perf-constd.txt)")
    if "perf_pgcheckd-tls_kernel_pct" in settings:
        out.append(f"  perf with TLS on the agent port, 32 clients: pgcheckd {settings['perf_pgcheckd-tls_openssl_pct']:.0f}% "
                   f"of its CPU in OpenSSL, {settings['perf_pgcheckd-tls_kernel_pct']:.0f}% in the kernel, "
                   f"{settings['perf_pgcheckd-tls_own_code_pct']:.1f}% in its own code; constd with TLS "
                   f"{settings.get('perf_constd-tls_openssl_pct', 0):.0f}% in OpenSSL (build/bench/perf-pgcheckd-tls.txt, "
                   f"perf-constd-tls.txt)")
    out.append("")

    # HAProxy
    rows = []
    for key, r in hap.items():
        label = {"pgcheckd": "pgcheckd (conf/haproxy.cfg)", "pgsqlchk": "pgsqlchk, same timings"}.get(key, key)
        pr = [x * 1000 for x in r["promote"]]
        fp = [x * 1000 if x is not None else None for x in r["freeze_primary"]]
        fr = [x * 1000 if x is not None else None for x in r["freeze_replica"]]
        probes = [p for p in r["probe_primary"] + r["probe_replica"] if p]
        answered = sum(p["requests"] + p["other"] for p in probes)
        asked = sum(p["requests"] + p["other"] + p["errors"] + p["timeouts"] for p in probes)
        pmax = max((p["max_us"] for p in probes), default=None)
        ph = {}
        for p in probes:
            merge_hist(ph, p["hist"])
        p99 = hist_pct(ph, 99) if probes else None
        bases = [p for p in r["probe_baseline"] if p]
        bmax = max((p["max_us"] for p in bases), default=None)
        bh = {}
        for p in bases:
            merge_hist(bh, p["hist"])
        b99 = hist_pct(bh, 99) if bases else None
        rec("haproxy", key, "", "checker_probe_p99_unfrozen", b99 / 1000.0 if b99 else None, "ms")
        rec("haproxy", key, "", "checker_probe_max_unfrozen", bmax / 1000.0 if bmax else None, "ms")
        st = [x["down"] * 1000 for x in r["stop"] if x["down"] is not None]
        failed = sum(x["failed"] for x in r["stop"])
        lasts = [x["last_failed"] * 1000 for x in r["stop"] if x["last_failed"] is not None]
        reads = sum(x["reads"] for x in r["stop"])

        def mm(xs):
            xs2 = [x for x in xs if x is not None]
            if not xs2:
                return "-"
            miss = len(xs) - len(xs2)
            return f"{median(xs2):.0f} / {max(xs2):.0f}" + (f" ({miss} never)" if miss else "")
        rows.append([label, f"{len(pr)}" + (f"+{r['promote_fail']} failed" if r["promote_fail"] else ""), mm(pr),
                     mm(fp), mm(fr), f"{answered}/{asked}", fmt(p99 / 1000.0 if p99 else None, 2),
                     fmt(pmax / 1000.0 if pmax else None, 1),
                     f"{fmt(b99 / 1000.0 if b99 else None, 2)} / {fmt(bmax / 1000.0 if bmax else None, 1)}",
                     mm(st), f"{failed}/{reads}" + (f", last at {max(lasts):.0f} ms" if lasts else "")])
        for name, xs in (("promote_to_write", pr), ("freeze_primary_to_down", fp), ("freeze_replica_to_down", fr),
                         ("stopped_replica_to_down", st)):
            xs2 = [x for x in xs if x is not None]
            rec("haproxy", key, "", name + "_median", median(xs2), "ms")
            rec("haproxy", key, "", name + "_max", max(xs2) if xs2 else None, "ms")
            rec("haproxy", key, "", name + "_rounds", len(xs), "")
            rec("haproxy", key, "", name + "_never", len(xs) - len(xs2), "")
        rec("haproxy", key, "", "checker_probes_answered_while_frozen", answered, "")
        rec("haproxy", key, "", "checker_probes_sent_while_frozen", asked, "")
        rec("haproxy", key, "", "checker_probe_p99_while_frozen", p99 / 1000.0 if p99 else None, "ms")
        rec("haproxy", key, "", "checker_probe_max_while_frozen", pmax / 1000.0 if pmax else None, "ms")
        rec("haproxy", key, "", "reads_failed_after_replica_stop", failed, "")
        rec("haproxy", key, "", "last_failed_read_after_replica_stop_max", max(lasts) if lasts else None, "ms")
        rec("haproxy", key, "", "reads_after_replica_stop", reads, "")
    if rows:
        out.append("Through HAProxy (inter 200ms, rise 1, fall 1, timeout check 500ms); times in ms as median / max")
        out.append(table(["checks by", "promotions", "promote->write", "freeze primary->DOWN", "freeze replica->DOWN",
                          "checker answered while frozen", "p99 ms", "max ms", "unfrozen p99/max",
                          "stopped replica->DOWN",
                          "reads failed meanwhile"], rows))
        out.append("  stopped replica: fast shutdown of a replica's PostgreSQL while one client opens read sessions "
                   "through the read frontend in a loop: time until HAProxy has it DOWN, reads that failed from the "
                   "stop until 0.3 s after that, and the latest of them")
        out.append("  promote->write: from `pg_ctl promote -w` returning to the first INSERT through the write "
                   "frontend that reached the new primary (old primary stopped first, cluster re-pointed each round)")
        out.append("  checker answered while frozen: probes (1 client, one every 10 ms, 1 s timeout) to the "
                   "frozen node's checker that got an answer, and their p99/max latency; unfrozen: the same "
                   "probe at the same time of a healthy node's checker (what the machine adds)")
        out.append("")

    # targets
    targets = []

    def target(name, value_txt, ok):
        targets.append([name, value_txt, "n/a" if ok is None else ("met" if ok else "MISSED")])
        rec("targets", "", "", name, value_txt, "met" if ok else ("n/a" if ok is None else "missed"))

    top = max(concurrencies)

    def ratios(num, den):
        return [(n, series[(num, n)].rps / series[(den, n)].rps) for n in concurrencies
                if (num, n) in series and (den, n) in series and series[(den, n)].rps]

    def ratio_target(name, num, den, want, limit=None):
        rs = ratios(num, den)
        if not rs:
            target(name, "not measured", None)
            return
        txt = ", ".join(f"{r:,.{2 if want < 10 else 0}f}x@{n}" for n, r in rs)
        if limit:
            lim = ratios(limit, den)
            txt += " (bound, constd instead of pgcheckd: " + ", ".join(f"{r:,.0f}x@{n}" for n, r in lim) + ")"
        missed = [n for n, r in rs if r < want]
        target(name + (f" - missed at {','.join(map(str, missed))} client{'s' if missed != [1] else ''}"
                       if missed else ""), txt, not missed)
    ratio_target(">= 30x Patroni REST checks/s (pgcheckd HTTP / Patroni /primary)", "pgcheckd-http", "patroni-primary",
                 30, "constd-http")
    ratio_target(">= 1000x pgsqlchk checks/s (pgcheckd HTTP / pgsqlchk)", "pgcheckd-http", "pgsqlchk", 1000,
                 "constd-http")
    ratio_target(">= 0.8x the constant-answer limit, agent line (pgcheckd / constd)", "pgcheckd-agent",
                 "constd-agent", 0.8)
    ratio_target(">= 0.8x the constant-answer limit, HTTP (pgcheckd / constd)", "pgcheckd-http", "constd-http", 0.8)
    for proto, pg, lim in (("agent line", "pgcheckd-agent", "constd-agent"), ("HTTP", "pgcheckd-http", "constd-http")):
        s = series.get((pg, top))
        l = series.get((lim, top))
        if s and s.requests:
            target(f"p99 <= 1 ms at {top} clients ({proto})",
                   f"{s.pct_ms(99):.2f} ms (constant-answer limit: {l.pct_ms(99):.2f} ms)" if l and l.requests
                   else f"{s.pct_ms(99):.2f} ms", s.pct_ms(99) <= 1.0)
    pcs = [p for p in (costs.get("pgcheckd-agent"), costs.get("pgcheckd-http")) if p]
    if pcs:
        sess = max(p["sessions"] for p in pcs)
        q = max(p["queries"] for p in pcs)
        target("0 PostgreSQL sessions and 0 queries caused by checks",
               f"{sess:.2g} sessions, {q:.2g} queries per 1000 checks over {sum(p['checks'] for p in pcs):,} checks "
               f"(the samplers: {pcs[0]['sampler_per_s']:.1f} queries/s, one session per pgcheckd on node1)", sess == 0 and q == 0)
        rss = max(p["rss"] for p in pcs)
        target("pgcheckd RSS <= 4 MB", f"RSS {rss:.1f} MB (PSS {max(p['pss'] for p in pcs):.1f} MB, anonymous "
               f"{max(p['anon'] for p in pcs):.2f} MB)", rss <= 4.0)
    r = hap.get("pgcheckd")
    if r:
        m = median(r["promote"])
        target("promote -> write through HAProxy <= 0.5 s (median)",
               f"median {m * 1000:.0f} ms, max {max(r['promote']) * 1000:.0f} ms over {len(r['promote'])} rounds"
               + (f", {r['promote_fail']} without a write in 15 s" if r["promote_fail"] else "")
               if m is not None else "no round", m is not None and m <= 0.5 and not r["promote_fail"])
        downs = r["freeze_primary"] + r["freeze_replica"]
        worst = None if any(d is None for d in downs) or not downs else max(downs)
        target("frozen node out of its pool within 2 s (worst of primary and replica freezes)",
               f"{worst * 1000:.0f} ms over {len(downs)} freezes" if worst is not None else "not always",
               worst is not None and worst <= 2.0)
        probes = [p for p in r["probe_primary"] + r["probe_replica"] if p]
        bases = [p for p in r["probe_baseline"] if p]
        if probes:
            h = {}
            for p in probes:
                merge_hist(h, p["hist"])
            hb = {}
            for p in bases:
                merge_hist(hb, p["hist"])
            pmax = max(p["max_us"] for p in probes) / 1000
            p99 = hist_pct(h, 99) / 1000
            unanswered = sum(p["errors"] + p["timeouts"] for p in probes)
            base = (f"; a healthy node's pgcheckd at the same time: p99 {hist_pct(hb, 99) / 1000:.2f} ms, max "
                    f"{max(p['max_us'] for p in bases) / 1000:.2f} ms" if hb else "")
            target("pgcheckd answers while its PostgreSQL is frozen: p99 < 1 ms",
                   f"p50 {hist_pct(h, 50) / 1000:.2f} ms, p99 {p99:.2f} ms, {unanswered} of {sum(h.values()) + unanswered}"
                   f" unanswered{base}", p99 < 1.0 and unanswered == 0)
            target("pgcheckd answers while its PostgreSQL is frozen: max < 1 ms", f"max {pmax:.2f} ms{base}",
                   pmax < 1.0 and unanswered == 0)
    out.append("Targets of issue 7")
    out.append(table(["target", "measured", ""], targets, align=["<", "<", "<"]))
    if NOTES:
        out.append("")
        out.append("Notes")
        out.extend("  - " + n for n in NOTES)
    text = "\n".join(out) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.txt").write_text(text)
    with open(OUT / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section", "checker", "clients", "metric", "value", "unit"])
        w.writerows(csv_rows)
    return text


# ---------------------------------------------------------------------------------------------------


def profile_pgcheckd(targets, settings):
    """perf record of pgcheckd and constd, plain and with TLS, under 32 agent-line clients: where the CPU
    goes. targets: [(name, port, pid, tls)]. Writes build/bench/perf-NAME.txt; the report quotes the split."""
    perf = shutil.which("perf")
    if not perf:
        note("perf is not installed (linux-perf): no profile of pgcheckd under load")
        return
    for name, port, pid, tls in targets:
        data = OUT / f"perf-{name}.data"
        res = {}
        t = threading.Thread(target=lambda port=port, tls=tls: res.update(run_agentload(port, 32, 5, tls=tls)))
        t.start()
        time.sleep(0.5)
        r = subprocess.run([perf, "record", "-F", "1999", "-g", "-o", data, "-p", str(pid), "--", "sleep", "3"],
                           capture_output=True, timeout=60)
        t.join(30)
        if r.returncode != 0:
            note(f"perf record failed: {r.stderr.decode()[-200:]}")
            return
        rep_dso = subprocess.run([perf, "report", "-i", data, "--no-children", "--sort", "dso", "-g", "none",
                                  "--stdio"], capture_output=True, timeout=120).stdout.decode()
        rep_sym = subprocess.run([perf, "report", "-i", data, "--no-children", "--sort", "dso,sym", "-g", "none",
                                  "--stdio"], capture_output=True, timeout=120).stdout.decode()
        lines = [l for l in rep_sym.splitlines() if l.strip() and not l.startswith("#")]
        (OUT / f"perf-{name}.txt").write_text(
            f"perf record -F 1999 -g -p {name} for 3 s under agentload -c 32 ({res.get('rps', 0):.0f} checks/s)\n"
            f"data: {data} (perf report -i {data})\n\n== by object\n{rep_dso}\n== top symbols\n"
            + "\n".join(lines[:60]) + "\n")
        shares = {}
        for l in rep_dso.splitlines():
            parts = l.split()
            if len(parts) >= 2 and parts[0].endswith("%") and not l.startswith("#"):
                shares[parts[1]] = float(parts[0].rstrip("%"))
        kern = shares.get("[kernel.kallsyms]", 0.0)
        own = shares.get(name.replace("-tls", ""), 0.0)
        crypto = sum(v for k, v in shares.items() if k.startswith(("libcrypto", "libssl")))
        settings[f"perf_{name}_kernel_pct"] = kern
        settings[f"perf_{name}_own_code_pct"] = own
        settings[f"perf_{name}_openssl_pct"] = crypto
        say(f"  perf: {name} at {res.get('rps', 0):.0f} checks/s: {kern:.1f}% of its CPU in the kernel, "
            f"{crypto:.1f}% in OpenSSL, {own:.1f}% in its own code (build/bench/perf-{name}.txt)")


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def versions():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, timeout=20).stdout.decode() + \
                subprocess.run(cmd, capture_output=True, timeout=20).stderr.decode()
        except Exception:  # noqa: BLE001
            return ""
    pg = run([str(PG_BIN / "postgres"), "--version"]).split()[2:3] or ["?"]
    hap = run([cl.HAPROXY_BIN, "-v"]).split()
    model = "?"
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"postgresql": pg[0], "haproxy": hap[2] if len(hap) > 2 else "?", "cpu_model": model}


def main():
    global LOAD_CPU, SERVER_CPU, OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 10)),
                    help="seconds of load per checker and client count (default 10, or $BENCH_SECONDS)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 10)),
                    help="promotion rounds per HAProxy configuration (default 10)")
    ap.add_argument("--clients", default="1,4,32", help="client counts (default 1,4,32)")
    ap.add_argument("--slices", type=int, default=0, help="interleaved slices per series (default: 2 s each)")
    ap.add_argument("--no-patroni", action="store_true", help="leave Patroni out")
    ap.add_argument("--no-perf", dest="perf", action="store_false",
                    help="skip the perf profile of pgcheckd and constd under load")
    ap.add_argument("--pin", action="store_true",
                    help="pin the load generator to the last CPU and constd/pgcheckd to the first (default: "
                         "the scheduler decides, as in production)")
    ap.add_argument("--only", choices=("all", "tls", "impact"), default=os.environ.get("BENCH_ONLY", "all"),
                    help="tls: only constd and pgcheckd, plain and with TLS (no conncheck, pgsqlchk, Patroni, "
                         "perf or HAProxy phase); impact: only the impact table (bench/impact.py); default all "
                         "(or $BENCH_ONLY)")
    ap.add_argument("--impact-rounds", type=int, default=int(os.environ.get("BENCH_IMPACT_ROUNDS", 3)),
                    help="rounds per event and checker of the impact table (default 3, or $BENCH_IMPACT_ROUNDS)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny run for `make check`: 1 s per series, 4 clients, one round, no Patroni")
    args = ap.parse_args()
    concurrencies = [int(x) for x in args.clients.split(",")]
    freeze_rounds = stop_rounds = max(1, args.rounds // 2)
    full = args.only == "all"
    if args.only == "tls":
        args.no_patroni, args.perf = True, False
        OUT = OUT / args.only  # a partial run leaves a full run's results alone
    if args.smoke:
        OUT = OUT / "smoke"  # `make check` leaves a full run's results alone
        args.seconds, args.rounds, concurrencies, args.no_patroni = 1.0, 1, [4], True
        freeze_rounds, stop_rounds = 1, 1
    args.seconds = max(1, int(round(args.seconds)))
    # slices of whole seconds (wrk's unit), 2 s each by default
    slices = min(args.slices or max(1, args.seconds // 2), args.seconds)
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) >= 2:
        LOAD_CPU, SERVER_CPU = cpus[-1], cpus[0]
    if os.geteuid() != 0:
        sys.exit("bench.py runs PostgreSQL as the postgres user and xinetd services as nobody: run it as root")
    if args.only == "impact":
        OUT = OUT / "impact"  # a partial run leaves a full run's results alone
        impact_part(args)
        return
    for tool in ("agentload", "constd", "conncheck"):
        if not os.access(TOOLS / tool, os.X_OK):
            sys.exit(f"{TOOLS / tool} is missing: run `make bench-tools`")
    if not WRK:
        note("wrk is not installed (bench/install-bench-deps installs it): HTTP is loaded by agentload instead")
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pgcheckd-bench-"))
    os.chmod(tmp, 0o755)
    settings = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": "make bench" + (f" BENCH_SECONDS={args.seconds:g}" if args.seconds != 10 else "")
                   + (f" BENCH_ROUNDS={args.rounds}" if args.rounds != 10 else "")
                   + (f" BENCH_ONLY={args.only}" if not full else "") if not args.smoke else "make bench-smoke",
        "only": args.only,
        "cpus": os.cpu_count(), "kernel": platform.release(), "loadavg_at_start": loadavg(), "seconds": args.seconds, "slices": slices,
        "clients": ",".join(map(str, concurrencies)), "promotion_rounds": args.rounds,
        "freeze_rounds": freeze_rounds, "stop_rounds": stop_rounds,
        "load_cpu": LOAD_CPU, "server_cpu": SERVER_CPU, "patroni": "Patroni not run",
        "http_load": "wrk 1 thread" if WRK else "agentload", "pgsqlchk_server": "",
        "pg_settings": "cluster.py defaults + pg_stat_statements, log_connections, log_disconnections",
    }
    settings.update(versions())
    series = {}
    hap = {}
    c = None
    pgsql = None
    pat = None
    try:
        say("starting PostgreSQL primary + 2 replicas, pgcheckd per node, HAProxy (tests/integration/cluster.py)")
        c = start_cluster()
        node1 = c.pg[0]
        pg1 = cluster_pg_target(node1)
        agent1 = c.agents[0]
        cports = cl.free_ports(3)
        constd_a = start_proc([TOOLS / "constd", "-p", cports[0]], tmp / "constd-agent.log")
        constd_h = start_proc([TOOLS / "constd", "-p", cports[1], "--http"], tmp / "constd-http.log")
        helpers = [(cports[0], constd_a), (cports[1], constd_h)]
        conncheck = None
        if full:
            conninfo = f"host=127.0.0.1 port={node1.port} dbname=postgres user=postgres application_name=conncheck"
            conncheck = start_proc([TOOLS / "conncheck", "-p", cports[2], "-d", conninfo], tmp / "conncheck.log")
            helpers.append((cports[2], conncheck))
        # TLS: a CA and a server certificate; constd with pgcheckd's TLS settings (and once with a
        # session cache, to show what resumption would give), and a second pgcheckd on node1 with TLS
        say("TLS: certificates (openssl), constd with TLS, a second pgcheckd on node1 with [tls] agent and http")
        pki = make_pki(tmp / "pki")
        tls = {"ca": pki["ca"]}
        tls_resume = {"ca": pki["ca"], "resume": True}
        mtls = {"ca": pki["ca"], "cert": pki["client_cert"], "key": pki["client_key"]}
        tports = cl.free_ports(4)
        constd_at = start_proc([TOOLS / "constd", "-p", tports[0], "--tls", pki["cert"], pki["key"]],
                               tmp / "constd-agent-tls.log")
        constd_ar = start_proc([TOOLS / "constd", "-p", tports[1], "--tls", pki["cert"], pki["key"], "--resume"],
                               tmp / "constd-agent-tls-resume.log")
        constd_ht = start_proc([TOOLS / "constd", "-p", tports[2], "--http", "--tls", pki["cert"], pki["key"]],
                               tmp / "constd-http-tls.log")
        constd_am = start_proc([TOOLS / "constd", "-p", tports[3], "--tls", pki["cert"], pki["key"], "--verify",
                                pki["ca"]], tmp / "constd-agent-mtls.log")
        helpers += list(zip(tports, (constd_at, constd_ar, constd_ht, constd_am)))
        for port, p in helpers:
            wait_port(port, 10, p)
        agent_tls = start_tls_pgcheckd(c, node1, pki)
        agent_mtls = start_tls_pgcheckd(c, node1, pki, verify_client=True)
        if full:
            pgsql = Pgsqlchk(tmp, [n.port for n in c.pg], start_proc, stop_proc).start()
            settings["pgsqlchk_server"] = pgsql.server
            if pgsql.server != "xinetd":
                note("xinetd is not installed: pgsqlchk is served by socat (fork per connection, the same model)")

        def pid_of(p):
            return lambda: (p.pid if p.poll() is None else None)
        agent_pid = lambda: agent1.pid  # noqa: E731
        tls_pid = lambda: agent_tls.pid  # noqa: E731
        agent_group = [
            Checker("constd-agent", "limit: constd (agent line)", "agent", cports[0], "primary\n", "up",
                    pid_of(constd_a), pg1, "pgcheckd-agent", pin_server=True),
            Checker("pgcheckd-agent", "pgcheckd (agent line)", "agent", agent1.port, "primary\n", "up 100%",
                    agent_pid, pg1, "pgcheckd-agent", pin_server=True),
            # TLS on the agent port: a new session per check (what pgcheckd allows: it keeps no session
            # cache and issues no tickets), and with the last session offered, as HAProxy 2.6-3.3 do
            Checker("constd-agent-tls", "limit: constd (agent line, TLS)", "agent", tports[0], "primary\n", "up",
                    pid_of(constd_at), pg1, "pgcheckd-agent-tls", pin_server=True, tls=tls),
            Checker("pgcheckd-agent-tls", "pgcheckd (agent line, TLS)", "agent", agent_tls.port, "primary\n",
                    "up 100%", tls_pid, pg1, "pgcheckd-agent-tls", pin_server=True, tls=tls),
            Checker("constd-agent-tls-resume", "limit: constd (agent line, TLS, sessions resumed)", "agent",
                    tports[1], "primary\n", "up", pid_of(constd_ar), pg1, "pgcheckd-agent-tls-resume",
                    pin_server=True, tls=tls_resume),
            Checker("pgcheckd-agent-tls-resume", "pgcheckd (agent line, TLS, resumption offered)", "agent",
                    agent_tls.port, "primary\n", "up 100%", tls_pid, pg1, "pgcheckd-agent-tls-resume",
                    pin_server=True, tls=tls_resume),
            # with a client certificate verified by the server (pgcheckd: verify_client = required)
            Checker("constd-agent-mtls", "limit: constd (agent line, TLS, client certificate)", "agent", tports[3],
                    "primary\n", "up", pid_of(constd_am), pg1, "pgcheckd-agent-mtls", pin_server=True, tls=mtls),
            Checker("pgcheckd-agent-mtls", "pgcheckd (agent line, TLS, verify_client = required)", "agent",
                    agent_mtls.port, "primary\n", "up 100%", lambda: agent_mtls.pid, pg1, "pgcheckd-agent-mtls",
                    pin_server=True, tls=mtls),
        ]
        # HTTP with and without TLS, all loaded by agentload, whose latency runs from connect to close and
        # so holds the handshake (wrk's starts when the request is written, after it)
        https_group = [
            Checker("constd-http-al", "limit: constd (HTTP, agentload)", "http", cports[1], "/primary", "",
                    pid_of(constd_h), pg1, "pgcheckd-http-al", pin_server=True, tool="agentload"),
            Checker("pgcheckd-http-al", "pgcheckd (HTTP, agentload)", "http", agent1.port, "/primary", "",
                    agent_pid, pg1, "pgcheckd-http-al", pin_server=True, tool="agentload"),
            Checker("constd-http-tls", "limit: constd (HTTPS, agentload)", "http", tports[2], "/primary", "",
                    pid_of(constd_ht), pg1, "pgcheckd-http-tls", pin_server=True, tls=tls, tool="agentload"),
            Checker("pgcheckd-http-tls", "pgcheckd (HTTPS on http_listen, agentload)", "http", agent_tls.http_port,
                    "/primary", "", tls_pid, pg1, "pgcheckd-http-tls", pin_server=True, tls=tls, tool="agentload"),
        ]
        http_group = []
        if full:
            http_group = [
                Checker("constd-http", "limit: constd (HTTP)", "http", cports[1], "/primary", "",
                        pid_of(constd_h), pg1, "pgcheckd-http", pin_server=True),
                Checker("pgcheckd-http", "pgcheckd (HTTP)", "http", agent1.port, "/primary", "",
                        agent_pid, pg1, "pgcheckd-http", pin_server=True),
                Checker("conncheck", "connect per check (pgDoctor model)", "http", cports[2], "/primary", "",
                        pid_of(conncheck), pg1, "pgcheckd-http"),
                Checker("pgsqlchk", f"pgsqlchk (psql per check, {pgsql.server})", "http", pgsql.ports[0],
                        "/primary", "", lambda: pgsql.root(0), pg1, "pgcheckd-http"),
            ]
        # Patroni: started before the load, so that its series interleave with pgcheckd's (idle, Patroni
        # and etcd cost the other series next to nothing: a loop every 10 s, etcd's heartbeats)
        if args.no_patroni:
            note("Patroni left out (--no-patroni / smoke mode)")
        elif not (PATRONI and ETCD):
            note("Patroni's REST API not measured: " + ("patroni" if not PATRONI else "etcd") +
                 " is not installed (bench/install-bench-deps installs patroni and etcd-server from Debian)")
        else:
            try:
                say("starting etcd and two Patroni nodes (leader + replica, their own PostgreSQL)")
                pat = PatroniCluster(tmp)
                pat.start()
                settings["patroni"] = pat.version.replace("patroni ", "Patroni ")
                pts = [PgTarget(f"patroni-p{i + 1}", {"host": "127.0.0.1", "port": pat.pg_ports[i]},
                                (lambda i=i: pat.postmaster_pid(i)), (lambda i=i: pat.pg_log(i))) for i in range(2)]
                http_group += [
                    Checker("patroni-primary", "Patroni REST /primary (leader)", "http", pat.rest[0], "/primary", "",
                            lambda: pat.patroni_pid(0), pts[0], "pgcheckd-http",
                            exclude_fn=lambda: {p for p in [pat.postmaster_pid(0)] if p}),
                    Checker("patroni-replica", "Patroni REST /replica (replica)", "http", pat.rest[1], "/replica", "",
                            lambda: pat.patroni_pid(1), pts[1], "pgcheckd-http",
                            exclude_fn=lambda: {p for p in [pat.postmaster_pid(1)] if p}),
                ]
            except Exception as e:  # noqa: BLE001
                note(f"Patroni's REST API not measured: Patroni/etcd did not start: {str(e).splitlines()[0][:300]}")
                if pat is not None:
                    pat.stop()
                    pat = None

        checkers = agent_group[:2] + http_group[:2] + agent_group[2:] + https_group + http_group[2:]
        # make sure every checker answers at all before loading it
        for ch in checkers:
            r = ch.probe()
            if r["requests"] == 0:
                raise RuntimeError(f"{ch.key} does not answer: {r}")
        time.sleep(1.0)  # a request abandoned by the probe above finishes before the first slice
        say(f"load: {args.seconds:g} s per checker and client count ({concurrencies}), {slices} interleaved slices")
        throughput([g for g in (agent_group, http_group, https_group) if g], concurrencies, args.seconds, slices,
                   series, smoke=args.smoke)
        if pat is not None:
            say("stopping Patroni and etcd")
            pat.stop()
            pat = None
        if args.perf and not args.smoke:
            profile_pgcheckd([("pgcheckd", agent1.port, agent1.pid, None), ("constd", cports[0], constd_a.pid, None),
                              ("pgcheckd-tls", agent_tls.port, agent_tls.pid, tls),
                              ("constd-tls", tports[0], constd_at.pid, tls)], settings)
        for p in (constd_a, constd_h, conncheck, constd_at, constd_ar, constd_ht, constd_am):
            stop_proc(p)
        agent_tls.stop()
        agent_mtls.stop()
        if not full:
            elapsed = time.monotonic() - T_START
            text = report(args, checkers, series, concurrencies, hap, settings, elapsed)
            print()
            print(text)
            say(f"wrote {OUT / 'results.txt'} and {OUT / 'results.csv'}")
            return

        # HAProxy
        c.pg[0].sql("CREATE TABLE IF NOT EXISTS bench_writes (id bigserial PRIMARY KEY, port int, "
                    "at timestamptz DEFAULT now())")
        roles = [0, 1, 2]

        def agent_probe(idx, seconds):
            return run_agentload(c.agents[idx].port, 1, seconds, request="health\n", expect="", pause_ms=10,
                                 timeout_ms=1000, pin=False)
        v1 = HaproxyVariant("pgcheckd", "pgcheckd (conf/haproxy.cfg)", c.haproxy, c.ports["write"], c.ports["read"],
                            agent_probe)
        haproxy_phase(c, v1, roles, args.rounds, freeze_rounds, stop_rounds, hap)
        if not args.smoke:
            h2 = impact.pgsqlchk_haproxy(c, pgsql)

            def chk_probe(idx, seconds):
                return run_agentload(pgsql.ports[idx], 1, seconds, http_path="/health", pause_ms=10, timeout_ms=1000,
                                     pin=False)
            v2 = HaproxyVariant("pgsqlchk", "pgsqlchk (same timings, httpchk)", h2, h2.write_port, h2.read_port,
                                chk_probe)
            try:
                haproxy_phase(c, v2, roles, args.rounds, freeze_rounds, stop_rounds, hap)
            finally:
                h2.stop()
        else:
            note("smoke mode: HAProxy measured with pgcheckd only, one round each")
        elapsed = time.monotonic() - T_START
        text = report(args, checkers, series, concurrencies, hap, settings, elapsed)
        print()
        print(text)
        say(f"wrote {OUT / 'results.txt'} and {OUT / 'results.csv'}")
        if args.smoke:
            missing = [ch.key for ch in checkers if not any(series[(ch.key, n)].requests for n in concurrencies)]
            if missing or not (OUT / "results.csv").stat().st_size:
                sys.exit(f"bench-smoke: no checks answered by {missing}")
            print("bench-smoke: harness ran, output written (no timing is asserted)")
    finally:
        if pgsql is not None:
            pgsql.stop()
        if pat is not None:
            pat.stop()
        if c is not None:
            c.close()
        _stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if full:
        impact_part(args)


SMOKE_IMPACT_EVENTS = ("replica_restart", "switchover")


def impact_part(args):
    """The impact table (bench/impact.py; bench/impact_patroni.py's rows too when it is there): every event
    for pgcheckd and pgsqlchk on fresh clusters of their own, after everything above has stopped. Smoke:
    one round of two events, and a failure if a round measured nothing (no timing is asserted)."""
    t0 = time.monotonic()
    events = SMOKE_IMPACT_EVENTS if args.smoke else impact.EVENTS
    rounds = 1 if args.smoke else args.impact_rounds
    say(f"impact: {rounds} rounds of {', '.join(events)} for {', '.join(impact.CHECKERS)}")
    rows = impact.run(rounds, OUT, events, say=say)
    gs = impact.goals(rows)
    broken = [f"{r['event']}/{r['checker']} round {r['round']}" + (f" ({r['error']})" if "error" in r else "")
              for r in impact.LAST_ROUNDS
              if "error" in r or not (r["reads"] and r["writes"] and r["stat_samples"]) or r["out_ms"] is None
              or r["failed_reads"] == r["reads"] or r["failed_writes"] == r["writes"]]
    if not args.smoke and not args.no_patroni:
        try:
            import impact_patroni
        except ImportError as e:
            note(f"impact: no Patroni rows ({e})")
        else:
            try:
                rows += impact_patroni.run(rounds, OUT)
            except Exception as e:  # noqa: BLE001 - pgcheckd's rows stand without Patroni's
                note(f"impact: Patroni rows failed: {str(e).splitlines()[0][:300] if str(e) else repr(e)}")
    text = (f"{impact.EXPLAIN}\n{impact.format_rows(rows)}\n\n{impact.format_goals(gs)}\n"
            f"impact part: {time.monotonic() - t0:.0f} s; every round in {OUT / 'impact-rounds.jsonl'}")
    print()
    print(text)
    (OUT / "impact.txt").write_text(text + "\n")
    impact.write_csv(rows, OUT / "impact.csv")
    say(f"wrote {OUT / 'impact.txt'} and {OUT / 'impact.csv'}")
    if args.smoke:
        if broken or len(rows) != len(events) * len(impact.CHECKERS):
            sys.exit(f"bench-smoke: the impact harness measured nothing in {broken or 'some rows'}")
        print("bench-smoke: impact harness ran, output written (no timing is asserted)")


if __name__ == "__main__":
    main()
