#!/usr/bin/python3
"""bench/impact.py: what clients see of a role change behind HAProxy, pgcheckd against pgsqlchk.

For each event and each checker, on a fresh cluster per round (tests/integration/cluster.py: a PostgreSQL
primary + 2 streaming replicas on loopback), with only that checker's HAProxy in front:

  switchover       fast stop of the primary, `pg_ctl promote -w` of node2 at once, node3 re-pointed
  crash            SIGKILL of the primary's postmaster, then the same promote and re-point
  replica_restart  fast stop + start of node2 (node3 up throughout)
  replica_freeze   SIGSTOP of node2's postmaster and backends for FREEZE_S seconds, then SIGCONT
  split_brain      node2 promoted while the old primary runs on (pgcheckd: peers configured)

  pgcheckd   conf/haproxy.cfg as shipped; one pgcheckd per node with [pg] data_directory (the watch),
             [haproxy] runtime_api + push_servers and [peers] addresses, as the README recommends
  pgsqlchk   bench/haproxy-pgsqlchk.cfg: the same frontends and check timings, bench/pgsqlchk under xinetd
             (one psql per check) as the check, no pgcheckd at all

Clients, open loop (a new attempt every EVERY_S whatever the earlier ones do, each on a thread of its
own, as many independent clients would; libpq connect_timeout 3 s): a writer opening a new connection
through the write frontend and inserting one row, a reader opening one through the read frontend. A
sampler reads HAProxy's `show stat` over its stats socket every SAMPLE_S; for pgcheckd a probe asks the
affected node's pgcheckd (and the new primary's) every PROBE_S, so that "pgcheckd knows" is a time too.

Per (event, checker) one row of `run()` (keys: ROW_KEYS): failed new connections (reads, writes; a
write refused by a replica is counted as a read-only error instead), acknowledged writes missing from
the primary at the end, ms from the event's start to the first successful write on the new primary and
to HAProxy no longer sending to the affected node (not UP, or weight 0), median/max over rounds.
Checkers run one after the other, interleaved round by round, each on its own fresh cluster: nothing of
one (pgsqlchk's 30 psql a second) loads the other's measurement, and the machine's drift hits both alike.
Nothing is asserted here; `goals()` says which of issue 13's goals a run met.

  /usr/bin/python3 bench/impact.py [--rounds 3] [--events switchover,crash,...] [--checkers pgcheckd,pgsqlchk]
                                   [--drain] [--no-watch] [--no-push] [--poll-ms N] [--out build/bench]

--drain wraps pgcheckd's switchover and replica restart in the README's procedure (`pgcheckd ctl drain
--wait` first; `ctl ready` after the restart); --no-watch, --no-push leave [pg] data_directory and
[haproxy] push_servers out (what pgcheckd did before issue 13), --poll-ms sets [pg] poll_interval_ms (a
promotion seen by the watch rather than the next poll: --poll-ms 5000); PGCHECKD_BIN compares another
build. Every round (HAProxy's changes, each pgcheckd's log lines, every failure) goes to
OUT/impact-rounds.jsonl.
"""

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO / "tests" / "integration"))

import psycopg2  # noqa: E402

import cluster as cl  # noqa: E402

XINETD = shutil.which("xinetd") or ("/usr/sbin/xinetd" if os.path.exists("/usr/sbin/xinetd") else None)
SOCAT = shutil.which("socat")

EVENTS = ("switchover", "crash", "replica_restart", "replica_freeze", "split_brain")
CHECKERS = ("pgcheckd", "pgsqlchk")
ROW_KEYS = ("event", "checker", "rounds", "failed_reads", "failed_writes", "read_only_errors", "lost_acked_writes",
            "first_write_ms_median", "first_write_ms_max", "out_ms_median", "out_ms_max", "notes")

EVERY_S = 0.01         # a new read and a new write every 10 ms
CONNECT_TIMEOUT_S = 3  # libpq counts whole seconds: 2-3 s, above fe_write's 1 s hold
SAMPLE_S = 0.01        # `show stat` every 10 ms
PROBE_S = 0.002        # pgcheckd's answer every 2 ms
FREEZE_S = 4.0         # replica_freeze: longer than a client's connect timeout
WARMUP_S = 0.5         # traffic before the event
TAIL_S = 0.5           # traffic after the cluster settled
# how long a round may wait for its outcome (first write on the new primary, the node back); a
# split brain that a checker never resolves (pgsqlchk: both nodes pass) ends after its window
WINDOW_S = {"switchover": 8.0, "crash": 8.0, "split_brain": 3.0, "replica_restart": 15.0, "replica_freeze": 15.0}


def now():
    return time.monotonic()


def first_line(e):
    """An error's first line, without libpq's 'connection to server at "127.0.0.1", port N failed: '."""
    s = str(e).strip()
    s = s.splitlines()[0] if s else repr(e)
    return re.sub(r'^connection to server at "[^"]*", port \d+ failed: ', "", s)


# ---------------------------------------------------------------------------------------------------
# pgsqlchk under xinetd (or socat); bench.py's throughput rows use it too


def spawn_for(c):
    """A process starter whose processes the cluster c stops at its close (by PID)."""
    def spawn(cmd, log):
        logf = open(log, "ab")
        try:
            p = subprocess.Popen([str(x) for x in cmd], stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            logf.close()
        c._procs.append(p)
        return p
    return spawn


def stop_popen(p, timeout=10):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


class Pgsqlchk:
    """One xinetd (one service per node) serving bench/pgsqlchk; socat per node when xinetd is missing.
    spawn(cmd, log) -> Popen and stop(Popen) start and stop the server processes."""

    def __init__(self, tmp, pg_ports, spawn, stop=stop_popen):
        self.tmp = Path(tmp)
        self.pg_ports = pg_ports
        self.ports = cl.free_ports(len(pg_ports))
        self.spawn, self.stop_one = spawn, stop
        self.procs = []
        self.server = None

    def start(self):
        script = BENCH / "pgsqlchk"
        if XINETD:
            self.server = "xinetd"
            conf = self.tmp / "xinetd.conf"
            parts = ["defaults\n{\n"
                     # xinetd's defaults (cps = 50 10: a service over 50 connections/s is switched off
                     # for 10 s) would measure xinetd's limiter, not the check: lifted here
                     "\tinstances = UNLIMITED\n\tper_source = UNLIMITED\n\tcps = 100000 1\n"
                     f"\tlog_type = FILE {self.tmp / 'xinetd-services.log'}\n\tlog_on_success =\n"
                     "\tlog_on_failure = HOST\n}\n"]
            for i, (port, pgport) in enumerate(zip(self.ports, self.pg_ports)):
                parts.append(f"service pgsqlchk{i + 1}\n{{\n\ttype = UNLISTED\n\tid = pgsqlchk{i + 1}\n"
                             f"\tport = {port}\n\tbind = 127.0.0.1\n\tsocket_type = stream\n\tprotocol = tcp\n"
                             f"\twait = no\n\tuser = nobody\n\tserver = {script}\n\tserver_args = {pgport}\n"
                             "\tflags = REUSE\n\tdisable = no\n}\n")
            conf.write_text("".join(parts))
            self.procs = [self.spawn([XINETD, "-dontfork", "-f", conf, "-pidfile", self.tmp / "xinetd.pid"],
                                     self.tmp / "xinetd.log")]
        elif SOCAT:
            self.server = "socat"
            for port, pgport in zip(self.ports, self.pg_ports):
                self.procs.append(self.spawn(
                    [SOCAT, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=128",
                     f"EXEC:{script} {pgport},nofork"], self.tmp / f"socat-{port}.log"))
        else:
            raise RuntimeError("neither xinetd nor socat is installed")

        def listening(port):
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"{self.server} exited with {self.procs[0].returncode}")
            return cl.port_accepts(port)
        for port in self.ports:
            cl.wait_until(lambda port=port: listening(port), 10, desc=f"{self.server} on {port}")
        return self

    def root(self, i=0):
        p = self.procs[min(i, len(self.procs) - 1)]
        return p.pid if p.poll() is None else None

    def stop(self):
        for p in self.procs:
            self.stop_one(p)


def pgsqlchk_haproxy(c, chk):
    """An HAProxy on bench/haproxy-pgsqlchk.cfg in front of c, asking chk (frontend and API ports of its
    own, stopped with the cluster or by its stop())."""
    ports = {15580 + i: p for i, p in enumerate(chk.ports)}
    return c.extra_haproxy(BENCH / "haproxy-pgsqlchk.cfg", name="haproxy-pgsqlchk",
                           edit=lambda text: cl.substitute_ports(text, ports))


def table(headers, rows, align=None):
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    align = align or (["<"] + [">"] * (len(headers) - 1))
    out = []
    line = "  ".join(f"{str(h):{a}{w}}" for h, w, a in zip(headers, widths, align))
    out.append(line)
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(f"{str(x):{a}{w}}" for x, w, a in zip(r, widths, align)))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------
# what is measured while an event runs


class Traffic:
    """Open-loop clients through one frontend: a new connection every every_s, each on a pool thread, so
    that a write held in HAProxy's write frontend does not delay the next one. log: (t_start, t_end,
    outcome, server port or error text, id), outcome ok / failed / read_only (SQLSTATE 25006: a write
    that reached a replica)."""

    def __init__(self, port, write, every_s=EVERY_S):
        self.port, self.write, self.every_s = port, write, every_s
        self.log = []
        self.stop_ev = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=256)
        self.t = threading.Thread(target=self._run, daemon=True)

    def _attempt(self, n):
        t0 = now()
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=cl.PG_USER, dbname="postgres",
                                    connect_timeout=CONNECT_TIMEOUT_S, application_name="impact")
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    if self.write:
                        cur.execute("INSERT INTO impact_w (id) VALUES (%s) RETURNING inet_server_port()", (n,))
                    else:
                        cur.execute("SELECT inet_server_port()")
                    port = cur.fetchone()[0]
            finally:
                conn.close()
            self.log.append((t0, now(), "ok", port, n))
        except psycopg2.Error as e:
            self.log.append((t0, now(), "read_only" if e.pgcode == "25006" else "failed", first_line(e), n))

    def _run(self):
        n, t_next = 0, now()
        while not self.stop_ev.is_set():
            n += 1
            self.pool.submit(self._attempt, n)
            t_next += self.every_s
            left = t_next - now()
            if left > 0:
                time.sleep(left)
            else:
                t_next = now()

    def start(self):
        self.t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.t.join(5)
        self.pool.shutdown(wait=True)  # every attempt ends within its connect timeout (+ a frozen query)


class Sampler:
    """A process of its own (so that the clients' threads do not delay it; at nice -10) that calls a probe
    every every_s and reports (t, value) for each change of value, t being the middle of the call on the
    monotonic clock, which every process shares. kind "stat": HAProxy's `show stat` on API port target,
    {(backend, server): (status, weight)}; kind "agent": pgcheckd on port target asked request, True for
    up, False for down, None when it cannot be asked."""

    def __init__(self, kind, target, every_s, request=""):
        self.kind = kind
        self.changes = []
        self.gaps = []  # (t, s): a call that started s after the previous one, s > 3 every_s
        self.calls = 0
        self.p = subprocess.Popen([sys.executable, __file__, "--sample", kind, str(target), request, str(every_s)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)

    def _read(self):
        for line in self.p.stdout:
            what, t, v = json.loads(line)
            if what == "v":
                if self.kind == "stat" and v is not None:
                    v = {tuple(k.split("/", 1)): tuple(st) for k, st in v.items()}
                self.changes.append((t, v))
            elif what == "gap":
                self.gaps.append((t, v))
            else:
                self.calls = v

    def first(self, pred, t_from):
        """The first time at or after t_from at which the value satisfied pred (a value that already held
        at t_from counts at t_from), else None."""
        held = None
        for t, v in list(self.changes):
            if t <= t_from:
                held = v
                continue
            if held is not None and pred(held):
                return t_from
            held = None
            if pred(v):
                return t
        return t_from if held is not None and pred(held) else None

    def start(self):
        self.t.start()
        return self

    def wait_first(self, timeout=20):
        cl.wait_until(lambda: self.changes or self.p.poll() is not None, timeout, interval=0.01,
                      desc=f"the {self.kind} sampler's first value")
        if not self.changes:
            raise RuntimeError(f"the {self.kind} sampler exited with {self.p.returncode}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
        self.t.join(5)


class _RuntimeApi:
    """What cluster.py's Haproxy needs for `show stat`: the API port."""
    api = cl.Haproxy.api
    show_stat = cl.Haproxy.show_stat

    def __init__(self, port):
        self.api_port = port


def sample_main(kind, target, request, every_s):
    """The Sampler's process: JSON lines ["v", t, value], ["gap", t, s], and ["calls", t, n] at SIGTERM."""
    try:
        os.nice(-10)
    except OSError:
        pass
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    if kind == "stat":
        api = _RuntimeApi(int(target))

        def probe():
            return {f"{r['pxname']}/{r['svname']}": [r["status"], int(r["weight"] or 0)] for r in api.show_stat()
                    if r["svname"] not in ("FRONTEND", "BACKEND")}
    else:
        def probe():
            return agent_up(int(target), request)
    last, t_prev, calls = object(), None, 0
    while not stop:
        t0 = now()
        if t_prev is not None and t0 - t_prev > 3 * every_s:
            print(json.dumps(["gap", t0, t0 - t_prev]), flush=True)
        t_prev = t0
        try:
            v = probe()
        except Exception:  # noqa: BLE001 - a failed probe is a value too
            v = None
        t1 = now()
        calls += 1
        if v != last:
            print(json.dumps(["v", (t0 + t1) / 2, v]), flush=True)
            last = v
        left = every_s - (now() - t0)
        if left > 0:
            time.sleep(left)
    print(json.dumps(["calls", now(), calls]), flush=True)


def out_of(states, key):
    """HAProxy no longer sends new connections to the server: not UP (DOWN, MAINT, DRAIN, NOLB) or weight 0."""
    st = (states or {}).get(key)
    return st is not None and (not st[0].startswith("UP") or st[1] == 0)


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z pgcheckd \w+: (.*)$")


def log_lines(agent, t_from):
    """[(t, message)] of the lines agent logged at or after t_from, t on the monotonic clock (from the
    log's wall-clock timestamps, in ms)."""
    offset = time.time() - now()
    out = []
    for line in agent.log().splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        wall = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        if wall - offset >= t_from - 0.001:
            out.append((wall - offset, m.group(2)))
    return out


def log_first(agent, pattern, t_from):
    """The time of the first line agent logged at or after t_from that matches pattern, else None."""
    return next((t for t, msg in log_lines(agent, t_from) if re.search(pattern, msg)), None)


def earliest(*ts):
    ts = [t for t in ts if t is not None]
    return min(ts) if ts else None


def agent_up(port, req):
    """True when pgcheckd answers `up` to req, False for down, None when it cannot be asked."""
    try:
        return cl.agent_request(port, req + "\n", timeout=0.5).decode().startswith("up")
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------------
# one fresh cluster with one checker in front


def pgcheckd_conf(c, watch=True, push=True, poll_ms=None, drain=False):
    """What the README recommends, per node: the data directory watched, pushes to this HAProxy, peers
    (drain: the node's address in HAProxy too, which `ctl drain --wait` looks for)."""
    ports = c.ports["agent"]
    conf = {}
    for i in range(c.n):
        conf[i] = {"peers": {"addresses": ", ".join(f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i)},
                   "haproxy": {"runtime_api": f"127.0.0.1:{c.ports['api']}"}}
        conf[i]["pg"] = {"data_directory": "@datadir"} if watch else {}
        if poll_ms:
            conf[i]["pg"].update(poll_interval_ms=str(poll_ms), stale_after_ms=str(max(60000, 3 * poll_ms)))
        if drain:
            conf[i]["haproxy"].update(advertise_addr="127.0.0.1", advertise_pg_port=str(c.ports["pg"][i]))
        if push:
            conf[i]["haproxy"]["push_servers"] = f"be_primary/node{i + 1}:primary, be_replicas/node{i + 1}:replica"
    return conf


class Rig:
    """A primary + 2 replicas with one checker's HAProxy in front and the table the writer fills."""

    def __init__(self, checker, watch=True, push=True, poll_ms=None, drain=False):
        self.checker = checker
        self.c = cl.Cluster(replicas=2)
        self.chk = None
        try:
            if checker == "pgcheckd":
                self.c.pgcheckd_conf = pgcheckd_conf(self.c, watch, push, poll_ms, drain)
                self.c.start()
                self.h = self.c.haproxy
            else:
                self.c.start(pgcheckd=False, haproxy=False)
                self.chk = Pgsqlchk(self.c.tmp, [n.port for n in self.c.pg], spawn_for(self.c)).start()
                self.h = self.c.haproxy = pgsqlchk_haproxy(self.c, self.chk)
                self.c.wait_routing(primary=0, replicas=[1, 2], timeout=30)
            # cluster.py runs with synchronous_commit = off (the WAL writer flushes every 200 ms, and only
            # flushed WAL is sent to the replicas): a crash would lose the last 200 ms of acknowledged
            # writes whatever the checker does. On here, as in production; replication stays asynchronous.
            for n in self.c.pg:
                n.sql("ALTER SYSTEM SET synchronous_commit = on")
                n.sql("SELECT pg_reload_conf()")
            self.c.pg[0].sql("CREATE TABLE impact_w (id bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
            for r in self.c.pg[1:]:
                cl.wait_until(lambda r=r: r.sql1("SELECT count(*) FROM pg_class WHERE relname = 'impact_w'") == 1,
                              10, desc=f"impact_w on {r.name}")
        except BaseException:
            self.close()
            raise

    def ctl(self, i, *args, timeout=60):
        r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(self.c.agents[i].ini), "ctl", *args], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"pgcheckd ctl {' '.join(args)} on {self.c.agents[i].name}: {r.stdout}{r.stderr}")

    def close(self):
        if self.chk is not None:
            self.chk.stop()
        self.c.close()


# ---------------------------------------------------------------------------------------------------
# the events: each does its steps, fills times (monotonic) and says what it affects


def ev_switchover(rig, t, drain):
    old, new, other = rig.c.pg
    t["event"] = now()
    if drain and rig.checker == "pgcheckd":
        rig.ctl(0, "drain", "--wait", "10")
        t["drained"] = now()
    old.stop("fast")
    t["stopped"] = t["promote_called"] = now()
    new.promote()
    t["promote_returned"] = now()
    other.follow(new)
    return {"affected": 0, "backend": "be_primary", "request": "primary", "new_primary": 1}


def ev_crash(rig, t, drain):
    old, new, other = rig.c.pg
    t["event"] = now()
    os.kill(old.proc.pid, signal.SIGKILL)
    old.proc.wait(5)
    t["promote_called"] = now()
    new.promote()
    t["promote_returned"] = now()
    other.follow(new)
    return {"affected": 0, "backend": "be_primary", "request": "primary", "new_primary": 1}


def ev_replica_restart(rig, t, drain):
    node = rig.c.pg[1]
    t["event"] = now()
    if drain and rig.checker == "pgcheckd":
        rig.ctl(1, "drain", "--wait", "30")
        t["drained"] = now()
    node.stop("fast")
    t["stopped"] = now()
    node.start()
    rig.c.wait_streaming([1])
    if drain and rig.checker == "pgcheckd":
        rig.ctl(1, "ready")
    return {"affected": 1, "backend": "be_replicas", "request": "replica", "new_primary": None}


def ev_replica_freeze(rig, t, drain):
    node = rig.c.pg[1]
    t["event"] = now()
    node.freeze()
    try:
        time.sleep(FREEZE_S)
    finally:
        node.thaw()
    t["thawed"] = now()
    return {"affected": 1, "backend": "be_replicas", "request": "replica", "new_primary": None}


def ev_split_brain(rig, t, drain):
    t["event"] = t["promote_called"] = now()
    rig.c.pg[1].promote()
    t["promote_returned"] = now()
    return {"affected": 0, "backend": "be_primary", "request": "primary", "new_primary": 1}


ACTIONS = {"switchover": ev_switchover, "crash": ev_crash, "replica_restart": ev_replica_restart,
           "replica_freeze": ev_replica_freeze, "split_brain": ev_split_brain}


def timeline(stat, t0):
    """HAProxy's changes from 0.1 s before the event on: [[ms, {"backend/server": "status weight"}], ...]."""
    out, last = [], {}
    for t, states in stat.changes:
        cur = {f"{b}/{s}": f"{st} {w}" for (b, s), (st, w) in (states or {}).items()}
        diff = {k: v for k, v in cur.items() if last.get(k) != v}
        last = cur
        if t >= t0 - 0.1 and diff:
            out.append([ms(t, t0), diff])
    return out


def ms(t, t0):
    return None if t is None or t0 is None else round((t - t0) * 1000, 1)


def run_round(event, checker, drain=False, watch=True, push=True, poll_ms=None):
    """One event on a fresh cluster with checker's HAProxy in front; a dict of what was seen."""
    rig = Rig(checker, watch, push, poll_ms, drain)
    c, h = rig.c, rig.h
    try:
        writes = Traffic(h.write_port, write=True)
        reads = Traffic(h.read_port, write=False)
        stat = Sampler("stat", h.api_port, SAMPLE_S)
        # the node an event affects is node1 for the primary events, node2 for the replica events;
        # the new primary (when there is one) is node2
        aff = 0 if event in ("switchover", "crash", "split_brain") else 1
        req = "primary" if aff == 0 else "replica"
        probes = {}
        if checker == "pgcheckd":
            probes["affected"] = Sampler("agent", c.agents[aff].port, PROBE_S, req)
            if aff == 0:
                probes["new_primary"] = Sampler("agent", c.agents[1].port, PROBE_S, "primary")
        samplers = [stat, *probes.values()]
        for s in samplers:
            s.start()
        for s in samplers:
            s.wait_first()
        writes.start()
        reads.start()
        time.sleep(WARMUP_S)
        t = {}
        try:
            what = ACTIONS[event](rig, t, drain)
            key = (what["backend"], c.name(what["affected"]))
            new_port = c.pg[what["new_primary"]].port if what["new_primary"] is not None else None
            deadline = t["event"] + WINDOW_S[event]

            def settled():
                if new_port is not None:  # a write on the new primary, and the old one out
                    return any(o == "ok" and p == new_port for _, _, o, p, _ in list(writes.log)) and \
                        stat.first(lambda s: out_of(s, key), t["event"]) is not None
                st = (stat.changes[-1][1] or {}).get(key) if stat.changes else None  # the node back
                return st is not None and st[0].startswith("UP") and st[1] > 0 and \
                    stat.first(lambda s: out_of(s, key), t["event"]) is not None
            while now() < deadline and not settled():
                time.sleep(0.02)
            t["settled"] = now() if settled() else None
            time.sleep(TAIL_S)
        finally:
            writes.stop()
            reads.stop()
            for s in samplers:
                s.stop()
        final = c.pg[what["new_primary"] if what["new_primary"] is not None else 0]
        on_final = {r[0] for r in final.sql("SELECT id FROM impact_w")}
        t0 = t["event"]
        after = lambda log: [x for x in log if x[1] >= t0]  # noqa: E731 - attempts that ended after the start
        wlog, rlog = after(writes.log), after(reads.log)
        ok_new = [x[1] for x in wlog if x[2] == "ok" and x[3] == new_port]
        t_out = stat.first(lambda s: out_of(s, key), t0)
        # pgcheckd knew: the first `down` its probe got, or the first line it logged saying so; the new
        # primary: the first `up` to "primary", or its "role replica -> primary" line
        known = new_known = pushed = None
        if "affected" in probes:
            a = c.agents[aff]
            known = earliest(probes["affected"].first(lambda v: v is False or v is None, t0),
                             log_first(a, r": down$|refusing writes", t0))
            pushed = log_first(a, rf"took this node out of {what['backend']}/", t0)
        if "new_primary" in probes:
            new_known = earliest(probes["new_primary"].first(lambda v: v is True, t0),
                                 log_first(c.agents[1], r"-> primary", t0))
        logs = {}
        if checker == "pgcheckd":  # what each pgcheckd logged from the event on (wall-clock ms)
            for a in c.agents:
                logs[a.pg.name] = [f"{ms(tl, t0)} ms: {msg[:160]}" for tl, msg in log_lines(a, t0)][:15]
        errors = {}
        for kind, log in (("read", rlog), ("write", wlog)):
            for x in log:
                if x[2] != "ok":
                    k = f"{kind}: {x[3]}"
                    errors[k] = errors.get(k, 0) + 1
        res = {
            "event": event, "checker": checker,
            "reads": len(rlog), "writes": len(wlog),
            "failed_reads": sum(1 for x in rlog if x[2] != "ok"),
            "failed_writes": sum(1 for x in wlog if x[2] == "failed"),
            "read_only_errors": sum(1 for x in wlog + rlog if x[2] == "read_only"),
            "failed_before": sum(1 for x in writes.log + reads.log if x[1] < t0 and x[2] != "ok"),
            "lost_acked_writes": sum(1 for x in writes.log if x[2] == "ok" and x[4] not in on_final),
            "first_write_ms": ms(min(ok_new), t0) if ok_new else None,
            "promote_to_write_ms": ms(min(ok_new), t.get("promote_returned")) if ok_new else None,
            "out_ms": ms(t_out, t0),
            "known_ms": ms(known, t0),
            "known_to_out_ms": ms(t_out, known),
            "known_to_pushed_ms": ms(pushed, known),
            "promote_to_known_ms": ms(new_known, t.get("promote_returned")),
            "settled_ms": ms(t.get("settled"), t0),
            "slowest_ok_read_ms": max((round((x[1] - x[0]) * 1000) for x in rlog if x[2] == "ok"), default=None),
            "slowest_ok_write_ms": max((round((x[1] - x[0]) * 1000) for x in wlog if x[2] == "ok"), default=None),
            "steps_ms": {k: ms(v, t0) for k, v in t.items()},
            "stat_samples": stat.calls,
            "stat_gaps_ms": [[ms(tg, t0), round(g * 1000)] for tg, g in stat.gaps if tg >= t0][:20],
            "errors": errors,
            "failures": [[kind, ms(x[0], t0), ms(x[1], t0), x[3][:80]] for kind, log in (("read", rlog), ("write", wlog))
                         for x in log if x[2] != "ok"][:200],
            "haproxy": timeline(stat, t0), "pgcheckd_logs": logs,
        }
        return res
    finally:
        rig.close()


# ---------------------------------------------------------------------------------------------------
# rows


def _mm(xs):
    xs = [x for x in xs if x is not None]
    return (round(statistics.median(xs), 1), round(max(xs), 1)) if xs else (None, None)


def _mm_txt(xs, what):
    m, x = _mm(xs)
    never = sum(1 for v in xs if v is None)
    if m is None:
        return f"{what}: never"
    return f"{what} {m:g}/{x:g} ms" + (f" (never in {never})" if never else "")


def aggregate(event, checker, rounds):
    """One row (ROW_KEYS) from the rounds of one event and checker (a round that failed is left out of
    the figures and named in the notes)."""
    failed = [r for r in rounds if "error" in r]
    rounds = [r for r in rounds if "error" not in r]
    primary_event = event in ("switchover", "crash", "split_brain")
    fw = [r["first_write_ms"] for r in rounds]
    out = [r["out_ms"] for r in rounds]
    fw_m, fw_x = _mm(fw) if primary_event else (None, None)
    out_m, out_x = _mm(out)
    notes = [f"{sum(r['reads'] for r in rounds)} reads, {sum(r['writes'] for r in rounds)} writes"]
    if primary_event:
        if any(v is None for v in fw):
            notes.append(f"no write on the new primary in {sum(1 for v in fw if v is None)} of {len(fw)} "
                         f"rounds ({WINDOW_S[event]:g} s window)")
        if any(r["steps_ms"].get("promote_returned") is not None for r in rounds):
            notes.append(_mm_txt([r["steps_ms"]["promote_returned"] - r["steps_ms"]["promote_called"]
                                  for r in rounds], "pg_ctl promote took"))
            notes.append(_mm_txt([r["promote_to_write_ms"] for r in rounds], "promote returned->write"))
    if any(v is None for v in out):
        notes.append(f"never out in {sum(1 for v in out if v is None)} of {len(out)} rounds")
    if checker == "pgcheckd":
        notes.append(_mm_txt([r["known_ms"] for r in rounds], "pgcheckd down after"))
        notes.append(_mm_txt([r["known_to_out_ms"] for r in rounds], "then out after"))
        if any(r.get("known_to_pushed_ms") is not None for r in rounds):
            notes.append(_mm_txt([r.get("known_to_pushed_ms") for r in rounds], "push logged after"))
        if primary_event:
            notes.append(_mm_txt([r["promote_to_known_ms"] for r in rounds], "promote returned->new primary up"))
    if any(r["steps_ms"].get("drained") is not None for r in rounds):
        notes.append(_mm_txt([r["steps_ms"].get("drained") for r in rounds], "drain --wait took"))
    before = sum(r["failed_before"] for r in rounds)
    if before:
        notes.append(f"{before} failed before the event")
    errors = {}
    for r in rounds:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    for k, v in sorted(errors.items(), key=lambda kv: -kv[1])[:2]:
        notes.append(f"{v}x '{k[:60]}'")
    if failed:
        notes.append(f"{len(failed)} rounds did not run to the end: {failed[0]['error'][:200]}")
    return {"event": event, "checker": checker, "rounds": len(rounds),
            "failed_reads": sum(r["failed_reads"] for r in rounds),
            "failed_writes": sum(r["failed_writes"] for r in rounds),
            "read_only_errors": sum(r["read_only_errors"] for r in rounds),
            "lost_acked_writes": sum(r["lost_acked_writes"] for r in rounds),
            "first_write_ms_median": fw_m, "first_write_ms_max": fw_x,
            "out_ms_median": out_m, "out_ms_max": out_x, "notes": "; ".join(notes)}


LAST_ROUNDS = []  # every round of the last run(), for goals() and the jsonl


def run(rounds, out_dir, events=EVENTS, checkers=CHECKERS, drain=False, watch=True, push=True, poll_ms=None,
        say=print):
    """Every event for every checker, rounds times, interleaved (round 1 of every event and checker, then
    round 2, ...); returns the rows (ROW_KEYS), writes out_dir/impact-rounds.jsonl (every round)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per = {(e, ch): [] for e in events for ch in checkers}
    LAST_ROUNDS.clear()
    t_start = now()
    with open(out_dir / "impact-rounds.jsonl", "w") as f:
        for k in range(rounds):
            for e in events:
                for ch in checkers:
                    try:
                        r = run_round(e, ch, drain=drain, watch=watch, push=push, poll_ms=poll_ms)
                    except Exception as ex:  # noqa: BLE001 - one broken round leaves the others standing
                        r = {"event": e, "checker": ch, "error": first_line(ex)}
                        say(f"impact round {k + 1} {e} {ch} failed: {ex}")
                    r["round"] = k + 1
                    per[(e, ch)].append(r)
                    LAST_ROUNDS.append(r)
                    f.write(json.dumps(r) + "\n")
                    f.flush()
                    if "error" in r:
                        continue
                    say(f"impact round {k + 1} {e:15s} {ch:8s}: failed reads {r['failed_reads']}/{r['reads']}, "
                        f"writes {r['failed_writes']}/{r['writes']}, read-only {r['read_only_errors']}, "
                        f"lost {r['lost_acked_writes']}, first write {r['first_write_ms']} ms "
                        f"(promote returned +{r['promote_to_write_ms']}), out {r['out_ms']} ms "
                        f"(known {r['known_ms']}), steps {r['steps_ms']}")
    say(f"impact: {rounds} rounds of {len(events)} events x {len(checkers)} checkers in {now() - t_start:.0f} s")
    return [aggregate(e, ch, per[(e, ch)]) for e in events for ch in checkers]


def goals(rows, rounds=None):
    """Issue 13's goals against pgcheckd's rows: [(goal, measured, 'met' / 'MISSED' / 'n/a')]."""
    rounds = LAST_ROUNDS if rounds is None else rounds
    mine = {r["event"]: r for r in rows if r["checker"] == "pgcheckd"}
    rd = [r for r in rounds if r["checker"] == "pgcheckd" and "error" not in r]
    out = []

    def goal(name, measured, ok):
        out.append((name, measured, "n/a" if ok is None else ("met" if ok else "MISSED")))
    rr = mine.get("replica_restart")
    goal("0 failed reads on a replica restart", "-" if rr is None else f"{rr['failed_reads']} in {rr['rounds']} rounds",
         None if rr is None else rr["failed_reads"] == 0)
    pw = [r["promote_to_write_ms"] for r in rd if r["event"] in ("switchover", "crash")]
    m, x = _mm(pw)
    goal("pg_ctl promote returned -> first write through HAProxy <= 30 ms median (switchover, crash)",
         "-" if m is None else f"median {m:g} ms, max {x:g} ms over {len(pw)} rounds", None if m is None else m <= 30)
    ko = [(r["event"], r["known_to_out_ms"]) for r in rd
          if r["event"] in ("switchover", "replica_restart", "split_brain")]
    vals = [v for _, v in ko if v is not None]
    missing = sum(1 for _, v in ko if v is None)
    worst = max(ko, key=lambda ev: -1e9 if ev[1] is None else ev[1], default=None)
    goal("a fenced or stopping node out of its backends <= 20 ms after pgcheckd knows (switchover, replica "
         "restart, split brain)",
         "-" if not ko else f"median {fmt(round(statistics.median(vals), 1)) if vals else '-'} ms, "
                            f"max {fmt(max(vals)) if vals else '-'} ms "
                            f"({worst[0]})" + (f", not measured in {missing}" if missing else ""),
         None if not vals else (max(vals) <= 20 and not missing))
    ro = sum(r["read_only_errors"] for r in mine.values())
    goal("never a read-only error", f"{ro} in {sum(r['rounds'] for r in mine.values())} rounds" if mine else "-",
         None if not mine else ro == 0)
    sw = mine.get("switchover")
    goal("never an acknowledged write lost in a planned switchover",
         "-" if sw is None else f"{sw['lost_acked_writes']} in {sw['rounds']} rounds",
         None if sw is None else sw["lost_acked_writes"] == 0)
    return out


def fmt(v):
    return "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def format_rows(rows):
    """The impact table as text: the rows (any checker, Patroni's too), their notes below."""
    headers = ["event", "checker", "rounds", "failed reads", "failed writes", "read-only errors",
               "acked writes lost", "first write ms (med/max)", "out ms (med/max)"]
    body = [[r["event"], r["checker"], r["rounds"], r["failed_reads"], r["failed_writes"], r["read_only_errors"],
             r["lost_acked_writes"], f"{fmt(r['first_write_ms_median'])} / {fmt(r['first_write_ms_max'])}",
             f"{fmt(r['out_ms_median'])} / {fmt(r['out_ms_max'])}"] for r in rows]
    notes = [f"  {r['event']}, {r['checker']}: {r['notes']}" for r in rows if r.get("notes")]
    return table(headers, body) + "\n" + "\n".join(notes)


def format_goals(gs):
    return table(["goal (issue 13)", "measured", ""], [list(g) for g in gs], align=["<", "<", "<"])


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ROW_KEYS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in ROW_KEYS})


EXPLAIN = (
    "Client-visible impact per event through HAProxy (inter 200ms, rise 1, fall 1); fresh cluster per round, "
    "one checker at a time.\n"
    "  failed: new connections (every 10 ms each, open loop, connect timeout 3 s) that failed from the event's "
    "start on; read-only errors: a write refused by a replica (counted apart from failed writes); acked writes "
    "lost: acknowledged, missing on the primary at the end.\n"
    "  first write: event start -> the first write acknowledged by the new primary; out: event start -> HAProxy's "
    "`show stat` (every 10 ms) has the affected node not UP or at weight 0 in its backend (node1 in be_primary, "
    "node2 in be_replicas).")


def main():
    if sys.argv[1:2] == ["--sample"]:
        sample_main(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", default=",".join(EVENTS))
    ap.add_argument("--checkers", default=",".join(CHECKERS))
    ap.add_argument("--drain", action="store_true", help="pgcheckd ctl drain --wait before the switchover/restart")
    ap.add_argument("--no-watch", dest="watch", action="store_false", help="no [pg] data_directory")
    ap.add_argument("--no-push", dest="push", action="store_false", help="no [haproxy] push_servers")
    ap.add_argument("--poll-ms", type=int, help="pgcheckd's [pg] poll_interval_ms (default: its own, 200)")
    ap.add_argument("--out", default=str(REPO / "build" / "bench"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("impact.py runs PostgreSQL as the postgres user and xinetd services as nobody: run it as root")
    events = [e for e in a.events.split(",") if e]
    checkers = [ch for ch in a.checkers.split(",") if ch]
    for e in events:
        if e not in EVENTS:
            sys.exit(f"unknown event {e!r} (one of {', '.join(EVENTS)})")
    rows = run(a.rounds, a.out, events, checkers, drain=a.drain, watch=a.watch, push=a.push, poll_ms=a.poll_ms)
    text = f"{EXPLAIN}\n{format_rows(rows)}\n\n{format_goals(goals(rows))}"
    print(text)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "impact.txt").write_text(text + "\n")
    write_csv(rows, Path(a.out) / "impact.csv")


if __name__ == "__main__":
    main()
