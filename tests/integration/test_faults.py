"""PostgreSQL faults under a running pgcheckd: stopped, killed, frozen, restarted, full, refusing the
password, blocked on a lock, and promoted and demoted in a loop under a writer going through HAProxy.

For each: the agent answers down (with the documented reason) within the bound its settings define,
keeps answering at once meanwhile, holds no more than one PostgreSQL session and a bounded number of
file descriptors, and is up again after the fault ends. Bounds come from the defaults:

    poll_interval_ms 200, query_timeout_ms 500, connect_timeout_ms 1000, reconnect_max_ms 2000.
"""

import json
import os
import re
import shutil
import signal
import socket
import threading
import time

import psycopg2
import pytest

import cluster as cl

POLL = 0.2
QUERY_TIMEOUT = 0.5
CONNECT_TIMEOUT = 1.0
RECONNECT_MAX = 2.0
PROMPT = 0.5                                      # a check must be answered within this, whatever PostgreSQL does
DOWN_BOUND = POLL + QUERY_TIMEOUT + 2.0           # down at most this long after the fault starts
UP_BOUND = RECONNECT_MAX + CONNECT_TIMEOUT + POLL + 2.0   # up at most this long after the fault ends
SESSIONS_SQL = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgcheckd'"


# ---------------------------------------------------------------------------------------------------
# helpers


def ask(agent, req="primary"):
    """(answer, seconds); a failure to get one complete line is an answer too ('<...>')."""
    t = time.monotonic()
    try:
        answer = agent.ask(req, timeout=2.0)
    except OSError as e:
        answer = f"<no answer: {e!r}>"
    return answer, time.monotonic() - t


def wait_answer(agent, pred, timeout, req="primary", desc=None):
    """Ask every 20 ms until pred(answer); return (answer, seconds waited). Every answer must be prompt."""
    t0 = time.monotonic()
    seen = []
    while True:
        answer, took = ask(agent, req)
        seen.append(answer)
        assert took < PROMPT, f"{agent.name} took {took * 1000:.0f} ms to answer {req!r} ({answer!r})"
        if pred(answer):
            return answer, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{desc or 'answer'}: not within {timeout:.1f}s; answers "
                                 f"{sorted(set(seen))}; last {answer!r}\n{agent.log(15)}")
        time.sleep(0.02)


def is_up(answer):
    return answer == "up 100%"


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def backend_titles(pg):
    """The process titles of the postmaster's client backends (ps: 'postgres: node1: user db [local] ...')."""
    out = []
    for pid in cl.descendants(pg.pid) if pg.running() else []:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "[local]" in title or "127.0.0.1(" in title:
            out.append(title)
    return out


def waiting_startups(pg):
    """Backends still in connection startup, blocked on a lock ('startup waiting', 'authentication waiting')."""
    return [t for t in backend_titles(pg) if re.search(r"(startup|authentication) waiting$", t)]


def pgcheckd_sessions(pg):
    return pg.sql1(SESSIONS_SQL, timeout=5)


def wait_one_session(pg, timeout=UP_BOUND):
    """Wait until pg_stat_activity shows exactly one pgcheckd session; return the most ever seen meanwhile."""
    most, n = 0, None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = pgcheckd_sessions(pg)
        most = max(most, n)
        if n == 1:
            return most
        time.sleep(0.05)
    raise AssertionError(f"{n} pgcheckd sessions in pg_stat_activity {timeout:.1f}s after the fault, want 1")


def http_json(port, path="/status"):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), (json.loads(body) if body.startswith(b"{") else body)


def log_since(agent, offset):
    return agent.logfile.read_bytes()[offset:].decode(errors="replace")


def log_size(agent):
    try:
        return agent.logfile.stat().st_size
    except OSError:
        return 0


def restart_agent(agent, conninfo=None):
    """Stop the agent, optionally give it a new conninfo, start it; return the log offset of the new run."""
    agent.stop()
    if conninfo is not None:
        agent.write_conf({"pg": {"conninfo": conninfo}})
    offset = log_size(agent)
    agent.start()
    return offset


# ---------------------------------------------------------------------------------------------------
# stopped, killed, restarted


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_stopped_postgresql_is_down_pg_unreachable_until_it_starts_again(cluster, report):
    c = cluster
    agent, pg = c.agents[0], c.pg[0]
    assert ask(agent)[0] == "up 100%"
    pg.stop(mode="fast")
    answer, t_down = wait_answer(agent, lambda a: a == "down #pg-unreachable", DOWN_BOUND,
                                 desc="'down #pg-unreachable' after the server stopped")
    # and it stays down, for every request, while the server is stopped
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        for req in ("primary", "replica", "read-only", "health"):
            a, took = ask(agent, req)
            assert a.startswith("down #") and took < PROMPT, f"{req!r} with PostgreSQL stopped: {a!r} ({took:.3f}s)"
    assert re.search(r"warning: PostgreSQL pg-unreachable: .*: down", agent.log()), agent.log(10)
    pg.start()
    _, t_up = wait_answer(agent, is_up, UP_BOUND, desc="'up 100%' after the server started")
    most = wait_one_session(pg)
    report(f"stopped: {answer!r} after {t_down:.2f}s; up {t_up:.2f}s after start returned; pgcheckd sessions "
           f"after recovery at most {most}")


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_postmaster_killed_with_sigkill_is_down_and_recovers_after_restart(cluster, report):
    c = cluster
    agent, pg = c.agents[0], c.pg[0]
    assert ask(agent)[0] == "up 100%"
    t0 = time.monotonic()
    pg.kill9()  # the postmaster, then wait for its children to notice and exit
    answer, _ = wait_answer(agent, lambda a: a.startswith("down #"), DOWN_BOUND,
                            desc="down after SIGKILL of the postmaster")
    t_down = time.monotonic() - t0
    answer, _ = wait_answer(agent, lambda a: a == "down #pg-unreachable", DOWN_BOUND,
                            desc="'down #pg-unreachable' once nothing listens")
    pg.start()  # crash recovery
    _, t_up = wait_answer(agent, is_up, UP_BOUND, desc="'up 100%' after the killed server started again")
    most = wait_one_session(pg)
    report(f"postmaster SIGKILL: down within {t_down:.2f}s ({answer!r}); up {t_up:.2f}s after the restart; "
           f"sessions at most {most}")


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_pgcheckd_backend_killed_with_sigkill_crash_restart_recovers_with_one_session(cluster, report):
    """SIGKILL of pgcheckd's own backend: PostgreSQL terminates every session and reinitializes (crash
    restart); pgcheckd answers at once throughout, logs the failure and is back up on one session."""
    c = cluster
    agent, pg = c.agents[0], c.pg[0]
    assert ask(agent)[0] == "up 100%"
    backend = pg.sql1("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcheckd'")
    postmaster = pg.pid
    ready0 = pg.log(100000).count("database system is ready to accept connections")
    answers, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            answers.append(ask(agent))
            time.sleep(0.01)
    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        os.kill(backend, signal.SIGKILL)
        cl.wait_until(lambda: pg.log(100000).count("database system is ready to accept connections") > ready0, 30,
                      desc="PostgreSQL's crash restart")
        _, t_up = wait_answer(agent, is_up, UP_BOUND, desc="'up 100%' after the crash restart")
    finally:
        stop.set()
        th.join(5)
    assert pg.pid == postmaster and pg.running(), "the postmaster itself should have survived"
    slow = [a for a in answers if a[1] >= PROMPT]
    assert not slow, f"answers slower than {PROMPT}s during the crash restart: {slow[:5]}"
    most = wait_one_session(pg)
    failures = re.findall(r"PostgreSQL (\S+): .*: down", agent.log())
    report(f"backend SIGKILL: answers {sorted({a for a, _ in answers})}, failures logged {failures}; up {t_up:.2f}s "
           f"after PostgreSQL was ready again; sessions at most {most}")
    assert failures, f"pgcheckd did not log its session's loss:\n{agent.log(20)}"


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_restart_fast_and_immediate_answers_promptly_and_is_back_up_on_one_session(cluster, report):
    c = cluster
    agent, pg = c.agents[0], c.pg[0]
    for mode in ("fast", "immediate"):
        assert ask(agent)[0] == "up 100%"
        answers = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                answers.append(ask(agent))
                time.sleep(0.01)
        th = threading.Thread(target=watch, daemon=True)
        th.start()
        try:
            t0 = time.monotonic()
            pg.restart(mode=mode)
            restarted = time.monotonic() - t0
            _, t_up = wait_answer(agent, is_up, UP_BOUND, desc=f"'up 100%' after a {mode} restart")
        finally:
            stop.set()
            th.join(5)
        slow = [a for a in answers if a[1] >= PROMPT]
        downs = sorted({a for a, _ in answers if a.startswith("down")})
        report(f"{mode} restart ({restarted:.2f}s): answers meanwhile {downs or 'never down'}, up {t_up:.2f}s "
               f"after it returned")
        assert not slow, f"answers slower than {PROMPT}s during a {mode} restart: {slow[:5]}"
        assert wait_one_session(pg) <= 2


# ---------------------------------------------------------------------------------------------------
# frozen


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_frozen_postgresql_is_down_within_deadline_piles_nothing_up_and_recovers(cluster, report):
    """SIGSTOP on the postmaster and every child for 10 s: down within poll + query timeout (+2 s), answers
    prompt, pgcheckd's fds never more than one above its baseline; after SIGCONT at most a couple of pgcheckd
    sessions ever show in pg_stat_activity, one remains, and the agent is up again."""
    c = cluster
    agent, pg = c.agents[0], c.pg[0]
    assert ask(agent)[0] == "up 100%"
    base_fds = nfds(agent.pid)
    fds, answers = [], []
    pg.freeze()
    t0 = time.monotonic()
    first_down = None
    try:
        while time.monotonic() - t0 < 10.0:
            a, took = ask(agent)
            answers.append((round(time.monotonic() - t0, 2), a, round(took, 3)))
            fds.append(nfds(agent.pid))
            if first_down is None and a.startswith("down #"):
                first_down = time.monotonic() - t0
            time.sleep(0.05)
    finally:
        pg.thaw()
    t_thaw = time.monotonic()
    # pgcheckd's sessions as PostgreSQL works through what queued up while it was stopped
    counts = []
    while time.monotonic() - t_thaw < 3.0:
        try:
            counts.append(pgcheckd_sessions(pg))
        except psycopg2.Error:
            pass
        time.sleep(0.01)
    _, t_up = wait_answer(agent, is_up, UP_BOUND, desc="'up 100%' after SIGCONT")
    lost = len(re.findall(r"connection to client lost", pg.log(400)))
    report(f"frozen 10 s: down after {first_down if first_down is None else round(first_down, 2)}s "
           f"({sorted({a for _, a, _ in answers if a.startswith('down')})}); slowest answer "
           f"{max(x[2] for x in answers) * 1000:.1f} ms; pgcheckd fds {min(fds)}..{max(fds)} (baseline {base_fds}); "
           f"after SIGCONT pgcheckd sessions at most {max(counts, default=None)} ({len(counts)} samples), "
           f"{lost} abandoned backends logged 'connection to client lost'; up {t_up:.2f}s after SIGCONT")
    slow = [x for x in answers if x[2] >= PROMPT]
    assert not slow, f"answers slower than {PROMPT}s while PostgreSQL was frozen: {slow[:5]}"
    assert first_down is not None and first_down <= DOWN_BOUND, \
        f"not down within {DOWN_BOUND:.1f}s of the freeze: {answers[:20]}"
    after = [x for x in answers if x[0] > first_down + 0.05]
    assert all(a.startswith("down #") for _, a, _ in after), f"up again while still frozen: {after}"
    assert max(fds) <= base_fds + 1, f"pgcheckd's fds grew to {max(fds)} (baseline {base_fds}) during the freeze"
    assert counts and max(counts) <= 2, f"pgcheckd sessions after SIGCONT: up to {max(counts, default=None)}"
    assert wait_one_session(pg) <= 2


# ---------------------------------------------------------------------------------------------------
# max_connections exhausted


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_exhausted_max_connections_is_down_pg_unreachable_with_the_reason_and_recovers(cluster, report):
    """pgcheckd as a pg_monitor role (no superuser, so no reserved slot): with every normal slot taken by
    idle sessions before it starts, it answers down #pg-unreachable and logs PostgreSQL's reason; one slot
    freed, it is up within the reconnect bound."""
    c = cluster
    agent, pg = c.agents[0], c.pg[0]
    pg.sql("CREATE ROLE pgcheckd_mon LOGIN; GRANT pg_monitor TO pgcheckd_mon; CREATE ROLE it_filler LOGIN")
    restart_agent(agent, f"host={pg.sockdir} port={pg.port} dbname=postgres user=pgcheckd_mon")
    wait_answer(agent, is_up, UP_BOUND, desc="up as pgcheckd_mon")
    agent.stop()
    fillers, refusal = [], None
    try:
        for _ in range(200):
            try:
                fillers.append(pg.connect(user="it_filler"))
            except psycopg2.OperationalError as e:
                refusal = str(e).strip().splitlines()[-1]
                break
        assert refusal and re.search(r"too many clients|remaining connection slots", refusal), \
            f"filling the server with {len(fillers)} sessions ended with {refusal!r}"
        superuser_gets_in = False
        try:
            pg.connect().close()  # the reserved slots: a superuser conninfo would not see the problem
            superuser_gets_in = True
        except psycopg2.OperationalError:
            pass
        offset = log_size(agent)
        agent.start()
        answer, t_down = wait_answer(agent, lambda a: a.startswith("down #") and a != "down #starting", DOWN_BOUND,
                                     desc="down with every slot taken")
        log = log_since(agent, offset)
        assert answer == "down #pg-unreachable", f"every slot taken: {answer!r}"
        assert re.search(r"warning: PostgreSQL pg-unreachable: .*(too many clients|remaining connection slots)",
                         log), f"no log line with PostgreSQL's reason:\n{log}"
        _, status = http_json(agent.port)
        assert status.get("poll_failure") == "pg-unreachable", status
        fillers.pop().close()
        t_freed = time.monotonic()
        _, t_up = wait_answer(agent, is_up, UP_BOUND, desc="up once a slot was freed")
    finally:
        for f in fillers:
            f.close()
    line = next(l for l in log.splitlines() if "pg-unreachable" in l)
    report(f"{len(fillers) + 1} idle sessions filled the server; pgcheckd (pg_monitor role) {answer!r} after "
           f"{t_down:.2f}s, log: {line.split(' warning: ')[-1]!r}; up {time.monotonic() - t_freed:.2f}s after a "
           f"slot was freed; a superuser would still have got in: {superuser_gets_in}")


# ---------------------------------------------------------------------------------------------------
# authentication failing


AUTH_ROLES = {"pgcheckd_scram": ("scram-sha-256", "Right-Scram-7391"), "pgcheckd_md5": ("md5", "Right-Md5-2468")}


@pytest.fixture(scope="module")
def auth_cluster():
    """One primary whose pg_hba.conf asks pgcheckd_scram for scram-sha-256 and pgcheckd_md5 for md5 on
    127.0.0.1 (everyone else: trust, as cluster.py sets up)."""
    if not os.access(cl.PGCHECKD_BIN, os.X_OK):
        pytest.fail(f"pgcheckd binary not found: {cl.PGCHECKD_BIN} (run `make`)", pytrace=False)
    c = cl.Cluster(replicas=0).start(haproxy=False)
    try:
        pg = c.pg[0]
        pg.sql("CREATE ROLE pgcheckd_scram LOGIN PASSWORD %s; GRANT pg_monitor TO pgcheckd_scram",
               (AUTH_ROLES["pgcheckd_scram"][1],))
        pg.sql("SET password_encryption = 'md5'; CREATE ROLE pgcheckd_md5 LOGIN PASSWORD %s; "
               "GRANT pg_monitor TO pgcheckd_md5", (AUTH_ROLES["pgcheckd_md5"][1],))
        hba = pg.datadir / "pg_hba.conf"
        rules = "".join(f"host all {role} 127.0.0.1/32 {method}\n" for role, (method, _) in AUTH_ROLES.items())
        hba.write_text(rules + hba.read_text())
        pg.sql("SELECT pg_reload_conf()")
        for role, (method, right) in AUTH_ROLES.items():
            with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
                psycopg2.connect(host="127.0.0.1", port=pg.port, dbname="postgres", user=role, password="nope",
                                 connect_timeout=3).close()
            psycopg2.connect(host="127.0.0.1", port=pg.port, dbname="postgres", user=role, password=right,
                             connect_timeout=3).close()
        assert pg.sql1("SELECT rolpassword LIKE 'md5%' FROM pg_authid WHERE rolname = 'pgcheckd_md5'") is True
        yield c
    finally:
        c.close()


# (id, conninfo with {port} and {pw}, why it fails)
AUTH_FORMS = [
    ("kv-scram", "host=127.0.0.1 port={port} dbname=postgres user=pgcheckd_scram password={pw}", "password"),
    ("kv-quoted", "host=127.0.0.1 port={port} dbname=postgres user=pgcheckd_scram password='{pw} x\\'y'", "password"),
    ("kv-md5", "host=127.0.0.1 port={port} dbname=postgres user=pgcheckd_md5 password={pw}", "password"),
    ("kv-tab", "host=127.0.0.1 port={port} dbname=postgres user=pgcheckd_scram\tpassword={pw}", "password"),
    ("uri-userinfo", "postgresql://pgcheckd_scram:{pw}@127.0.0.1:{port}/postgres", "password"),
    ("uri-query", "postgresql://pgcheckd_scram@127.0.0.1:{port}/postgres?password={pw}", "password"),
    ("uri-query-after-user", "postgresql://127.0.0.1:{port}/postgres?user=pgcheckd_scram&password={pw}", "password"),
    ("no-such-role", "host=127.0.0.1 port={port} dbname=postgres user=it_no_such_role password={pw}", "role"),
]


@pytest.mark.parametrize("form,template,why", AUTH_FORMS, ids=[f[0] for f in AUTH_FORMS])
def test_failed_authentication_is_down_pg_unreachable_and_never_shows_the_password(auth_cluster, report, form,
                                                                                   template, why):
    c = auth_cluster
    agent, pg = c.agents[0], c.pg[0]
    secret = f"Wr0ng{form.replace('-', '')}Pw"
    offset = restart_agent(agent, template.format(port=pg.port, pw=secret))
    try:
        answer, t_down = wait_answer(agent, lambda a: a not in ("down #starting",), DOWN_BOUND,
                                     desc="an answer after the first connection attempt")
        cl.wait_until(lambda: "pg-unreachable" in log_since(agent, offset), 3, desc="the failure in the log")
        _, status = http_json(agent.port)
        _, metrics = http_json(agent.port, "/metrics")
    finally:
        log = log_since(agent, offset)
    failure = [l for l in log.splitlines() if "pg-unreachable" in l]
    report(f"{form}: {answer!r}; log: {failure[0].split(' warning: ')[-1] if failure else None!r}")
    assert answer == "down #pg-unreachable", f"{form}: {answer!r}"
    want = "password authentication failed" if why == "password" else "does not exist"
    assert failure and want in failure[0], f"{form}: no pg-unreachable log line saying {want!r}:\n{log}"
    leaks = [l for l in log.splitlines() if secret in l]
    assert not leaks, f"{form}: the password is in pgcheckd's log: {leaks}"
    assert secret not in json.dumps(status) and secret.encode() not in metrics, f"{form}: password in /status or /metrics"


def test_right_password_in_a_uri_query_works_and_is_not_logged(auth_cluster, report):
    """The same URI form with the right password: pgcheckd is up (so the form itself is understood), and
    a working credential must not reach the log either."""
    c = auth_cluster
    agent, pg = c.agents[0], c.pg[0]
    right = AUTH_ROLES["pgcheckd_scram"][1]
    offset = restart_agent(agent, f"postgresql://pgcheckd_scram@127.0.0.1:{pg.port}/postgres?password={right}")
    wait_answer(agent, is_up, UP_BOUND, desc="up with the right password")
    log = log_since(agent, offset)
    leaks = [l for l in log.splitlines() if right in l]
    assert not leaks, f"pgcheckd logged a working password: {leaks}"


# ---------------------------------------------------------------------------------------------------
# a lock


@pytest.mark.parametrize("catalog", ["pg_class", "pg_database", "pg_authid"])
@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_access_exclusive_lock_on_a_catalog_sample_ends_within_deadline_without_pileup(cluster, report, catalog):
    """Another session holds ACCESS EXCLUSIVE on a catalog for 8 s. The sample reads pg_stat_activity and
    pg_stat_replication, views that join pg_database and pg_authid, so a lock on either blocks it; a lock
    on pg_class does not (pgcheckd's session finds what it needs in its warm catalog caches). Whatever
    blocks: the agent answers at once, never says up on a sample older than poll + query timeout (+0.5 s),
    is down within the bound if the sample blocks, and up again after the lock is released. And its
    reconnects must not pile up backends waiting on the lock in connection startup, each holding a
    connection slot (new connections read pg_authid while authenticating and pg_database while starting,
    so they block too): at most two at any time. Waiting on pg_authid is cut by authentication_timeout
    (60 s by default); waiting on pg_database is not, so those accumulate for as long as the lock lasts."""
    c = cluster
    agent, pg = c.agents[0], c.pg[0]
    assert ask(agent)[0] == "up 100%"
    holder = pg.connect(application_name="it_lock_holder")
    holder.autocommit = False
    samples, stuck_most, stuck_titles = [], 0, []
    try:
        with holder.cursor() as cur:
            cur.execute(f"LOCK TABLE {catalog} IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8.0:
            t = time.monotonic()
            head, st = http_json(agent.port)
            took = time.monotonic() - t
            v = st["verdicts"]["primary"]
            samples.append((round(t - t0, 2), v["up"], v["reason"], st.get("sample_age_ms"), round(took, 3)))
            stuck = waiting_startups(pg)
            if len(stuck) > stuck_most:
                stuck_most, stuck_titles = len(stuck), stuck
            time.sleep(0.1)
    finally:
        holder.rollback()
        holder.close()
    _, t_up = wait_answer(agent, is_up, UP_BOUND, desc=f"up after the lock on {catalog} was released")
    most = wait_one_session(pg)
    downs = [s for s in samples if not s[1]]
    report(f"LOCK {catalog}: {len(downs)} of {len(samples)} probes down ({sorted({s[2] for s in downs})}), "
           f"first at {downs[0][0] if downs else None}s; oldest sample while up "
           f"{max((s[3] or 0 for s in samples if s[1]), default=0)} ms; backends waiting in startup at most "
           f"{stuck_most}; up {t_up:.2f}s after release, sessions after {most}")
    slow = [s for s in samples if s[4] >= PROMPT]
    assert not slow, f"/status answered slowly under the lock: {slow[:5]}"
    stale_up = [s for s in samples if s[1] and (s[3] is None or s[3] > (POLL + QUERY_TIMEOUT) * 1000 + 500)]
    assert not stale_up, f"up on a sample older than the deadline while {catalog} was locked: {stale_up[:5]}"
    if catalog != "pg_class":
        # the sample reads views that join this catalog: it blocks, and the node must go down
        assert downs, f"never down while {catalog} was locked: {samples[:12]}"
    if downs:
        assert downs[0][0] <= DOWN_BOUND, f"down only {downs[0][0]}s into the lock: {samples[:12]}"
    assert stuck_most <= 2, \
        f"{stuck_most} of pgcheckd's connection attempts were left waiting on the lock in connection startup, " \
        f"each holding a connection slot: {stuck_titles}"


# ---------------------------------------------------------------------------------------------------
# promotion and demotion in a loop


TLI_SQL = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
FENCE_BOUND = 2.0  # s after `pg_ctl promote` returned: the new primary sampled (0.2), the old one's
#                    pgcheckd read its peer (0.2), HAProxy checked the old one (0.2), plus slack


class RecordingWriter(threading.Thread):
    """One INSERT per new connection through HAProxy's write frontend; per write: seq, client start and
    end (monotonic), and for a committed write the node's port, pg_is_in_recovery(), timeline, system id."""

    def __init__(self, c, seconds):
        super().__init__(daemon=True)
        self.c, self.seconds = c, seconds
        self.writes = []  # (seq, t0, t1, ok, port, in_recovery, tli, error)
        self.stop_flag = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.seconds
        seq = 0
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            seq += 1
            t0 = time.monotonic()
            try:
                conn = self.c.connect_frontend("write", timeout=2, application_name="it_writer")
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"INSERT INTO it_writes (seq, port, tli, sysid) VALUES (%s, inet_server_port(), "
                                    f"{TLI_SQL}, (SELECT system_identifier FROM pg_control_system())) "
                                    f"RETURNING port, pg_is_in_recovery(), tli", (seq,))
                        port, rec, tli = cur.fetchone()
                finally:
                    conn.close()
                self.writes.append((seq, t0, time.monotonic(), True, port, rec, tli, None))
            except psycopg2.Error as e:
                msg = " ".join(str(e).split())[:120]
                self.writes.append((seq, t0, time.monotonic(), False, None, None, None, msg))
                time.sleep(0.005)


def rebuild_as_replica(node, primary):
    """Demote: stop the old primary and re-base it as a streaming replica of the new one (fresh pg_basebackup)."""
    node.stop(mode="fast")
    primary.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active", (node.name,))
    shutil.rmtree(node.datadir)
    node.basebackup_from(primary)
    node.start()


def test_promotion_demotion_loop_routes_no_write_to_a_replica_nor_to_the_old_primary_once_fenced(report):
    """Three rounds on two peered nodes, a writer on HAProxy's write frontend throughout: promote the
    replica while the old primary still runs (pgcheckd fences the old one through its peer), then demote
    the old primary by re-basing it as a replica of the new one. Counted per write: no write is routed to
    a node in recovery (it would fail read-only) or accepted by one; no two nodes accept writes on one
    timeline; the superseded primary accepts no write that started after HAProxy showed it DOWN, nor any
    later than FENCE_BOUND after the promotion returned. Writes it took in the window before are reported:
    they are on a timeline that was left (lost), which only stopping the old primary first avoids."""
    c = cl.Cluster(replicas=1)
    ports = c.ports["agent"]
    c.pgcheckd_conf = {i: {"peers": {"addresses": f"127.0.0.1:{ports[1 - i]}"}} for i in range(2)}
    c.start()
    writer, routing, stop_sampling = None, [], threading.Event()
    try:
        c.through("write", "CREATE TABLE it_writes (seq int PRIMARY KEY, port int, tli int, sysid text, "
                           "at timestamptz DEFAULT clock_timestamp())")
        cl.wait_until(lambda: c.pg[1].sql1("SELECT to_regclass('it_writes') IS NOT NULL"), 10, desc="replay")

        def sample_routing():
            while not stop_sampling.is_set():
                try:
                    st = c.haproxy.states("be_primary")
                    routing.append((time.monotonic(), sorted(n for n, (s, _) in st.items() if s.startswith("UP"))))
                except Exception:  # noqa: BLE001 - a missed sample is not a result
                    pass
                time.sleep(0.05)
        sampler = threading.Thread(target=sample_routing, daemon=True)
        sampler.start()
        writer = RecordingWriter(c, seconds=120)
        writer.start()
        promotions = []  # (t_before, t_after, new primary port, old primary port, t HAProxy showed the switch)
        primary, replica = 0, 1
        cl.wait_until(lambda: sum(1 for w in writer.writes if w[3]) >= 20, 10, desc="first writes")
        for rnd in range(3):
            old, new = c.pg[primary], c.pg[replica]
            t_a = time.monotonic()
            new.promote()
            t_b = time.monotonic()
            c.wait_routing(primary=replica, replicas=[], timeout=10)
            promotions.append((t_a, t_b, new.port, old.port, time.monotonic()))
            n0 = len(writer.writes)
            cl.wait_until(lambda: any(w[3] and w[4] == new.port for w in writer.writes[n0:]), 10,
                          desc=f"round {rnd + 1}: writes on the new primary {new.name}")
            rebuild_as_replica(old, new)
            c.wait_streaming(replicas=[primary], timeout=20)
            c.wait_routing(primary=replica, replicas=[primary], timeout=15)
            n0 = len(writer.writes)
            cl.wait_until(lambda: sum(1 for w in writer.writes[n0:] if w[3]) >= 20, 10,
                          desc=f"round {rnd + 1}: writes after {old.name} was re-based")
            primary, replica = replica, primary
        writer.stop_flag.set()
        writer.join(10)
        stop_sampling.set()
        sampler.join(5)
        final = c.pg[primary]
        kept = {r[0] for r in final.sql("SELECT seq FROM it_writes")}
    finally:
        if writer is not None:
            writer.stop_flag.set()
        stop_sampling.set()
        logs = c.logs() if writer is not None else ""
        c.close()

    writes = writer.writes
    ok = [w for w in writes if w[3]]

    def primary_at(t):
        """The primary's port at time t, or None inside a promotion (between its start and its return)."""
        current = promotions[0][3]
        for t_a, t_b, new_port, _old, _routed in promotions:
            if t < t_a:
                return current
            if t <= t_b:
                return None
            current = new_port
        return current
    in_recovery = [w for w in ok if w[5]]
    read_only_routed = [w for w in writes if not w[3] and "read-only transaction" in (w[7] or "")]
    racing, stale = [], []
    for w in ok:
        at_start = primary_at(w[1])
        if at_start is None or primary_at(w[2]) is None:
            racing.append(w)
        elif w[4] != at_start:
            t_b = max(p[1] for p in promotions if p[1] <= w[1])
            stale.append((w, w[1] - t_b))
    tl_nodes = {}
    for w in ok:
        tl_nodes.setdefault(w[6], set()).add(w[4])
    lost = [w for w in ok if w[0] not in kept]
    stale_seqs, racing_seqs = {w[0] for w, _ in stale}, {w[0] for w in racing}
    lost_stale = sum(1 for w in lost if w[0] in stale_seqs)
    lost_racing = sum(1 for w in lost if w[0] in racing_seqs)
    lost_before = len(lost) - lost_stale - lost_racing  # committed by the primary of the moment, not yet replicated
    dual = sum(1 for _, up in routing if len(up) > 1)
    errors = {}
    for w in writes:
        if not w[3]:
            key = re.sub(r"\d+", "N", w[7])[:160]
            errors[key] = errors.get(key, 0) + 1
    report(f"{len(promotions)} promotions, {len(writes)} writes: {len(ok)} committed, {len(writes) - len(ok)} failed "
           f"{errors}; on a superseded primary: {len(stale)} (latest started "
           f"{max((d for _, d in stale), default=0) * 1000:.0f} ms after promote returned); during a promotion: "
           f"{len(racing)}; committed but absent on the final primary: {len(lost)} ({lost_stale} on a superseded primary, "
           f"{lost_racing} during a promotion, {lost_before} committed by the primary before it was promoted away "
           f"from and not yet streamed: asynchronous replication, synchronous_commit = off); timelines {sorted(tl_nodes)}; "
           f"HAProxy showed two primaries UP in {dual} of {len(routing)} samples")
    assert in_recovery == [], f"writes committed by a node in recovery: {in_recovery[:5]}"
    assert read_only_routed == [], f"writes routed to a node in recovery (failed read-only): {read_only_routed[:5]}\n{logs}"
    shared = {tli: nodes for tli, nodes in tl_nodes.items() if len(nodes) > 1}
    assert not shared, f"two nodes accepted writes on one timeline: {shared}"
    # a write on promotion p's old primary that started after HAProxy showed the switch, before that node
    # was itself promoted again (the nodes take turns)
    after_down = [w for w in ok for p in promotions if w[4] == p[3] and w[1] > p[4] and
                  not any(q[2] == p[3] and p[4] < q[0] <= w[1] for q in promotions)]
    assert not after_down, f"writes accepted by the old primary after HAProxy showed it DOWN: {after_down[:5]}\n{logs}"
    late = [(w, round(d, 3)) for w, d in stale if d > FENCE_BOUND]
    assert not late, f"writes accepted by a superseded primary more than {FENCE_BOUND}s after the promotion " \
                     f"returned: {late[:5]}\n{logs}"
    assert len(ok) > 100, f"only {len(ok)} writes committed in {len(promotions)} rounds"
