"""A frozen PostgreSQL and a replica whose replay is paused under write load go down, and come back."""

import http.client
import re
import socket
import time

import pytest

import cluster as cl


def _timed_ask(agent, req, timeout=1.0):
    t = time.monotonic()
    try:
        answer = agent.ask(req, timeout=timeout)
    except (socket.timeout, OSError) as e:
        answer = f"<no answer: {e}>"
    return answer, time.monotonic() - t


def test_frozen_postgresql_goes_down_while_agent_answers_promptly(cluster, report):
    """SIGSTOP on the primary's postmaster and all its children: within poll_interval + query_timeout
    (+ slack) the agent says down, and every request is answered in well under a second meanwhile."""
    c = cluster
    agent = c.agents[0]
    assert agent.ask("primary") == "up 100%"
    frozen = c.pg[0].freeze()
    t0 = time.monotonic()
    log = []           # (seconds since freeze, request, answer, latency)
    first_down = None
    try:
        while time.monotonic() - t0 < 8:
            for req in ("primary", "health"):
                answer, lat = _timed_ask(agent, req)
                log.append((round(time.monotonic() - t0, 2), req, answer, round(lat, 3)))
            if first_down is None and all(a.startswith("down #") for _, _, a, _ in log[-2:]):
                first_down = time.monotonic() - t0
            if first_down is not None and time.monotonic() - t0 > first_down + 1.5:
                break
            time.sleep(0.1)
        haproxy_status = c.haproxy.status("be_primary", "node1")
    finally:
        c.pg[0].thaw()
    thawed = time.monotonic()

    slow = [e for e in log if e[3] >= 1.0 or e[2].startswith("<no answer")]
    assert not slow, f"requests not answered within 1 s while PostgreSQL was frozen: {slow}"
    assert first_down is not None, f"the agent never said down while PostgreSQL was frozen ({len(frozen)} " \
                                   f"processes stopped): {log}"
    report(f"down {first_down:.2f}s after SIGSTOP; answers while frozen: "
           f"{sorted({a for _, _, a, _ in log})}; slowest answer {max(e[3] for e in log) * 1000:.0f} ms")
    assert first_down <= 5.0, f"down only {first_down:.2f}s after the freeze: {log}"
    after = [e for e in log if e[0] > first_down + 0.05]
    assert all(a.startswith("down #") for _, _, a, _ in after), \
        f"the agent flapped back up while PostgreSQL was still frozen: {after}"
    assert haproxy_status.startswith("DOWN"), f"be_primary/node1 was {haproxy_status} while PostgreSQL was frozen"

    cl.wait_until(lambda: agent.ask("primary") == "up 100%", 10, desc="'up 100%' after SIGCONT")
    report(f"up again {time.monotonic() - thawed:.2f}s after SIGCONT")
    c.wait_status("be_primary", 0, lambda s: s.startswith("UP"), timeout=5)
    assert c.where("write") == ("node1", False)


LAG_RE = re.compile(r"^down #lag \S+$")


@pytest.mark.cluster_conf(pgcheckd={1: {"replica": {"over_lag": "down"}}, 2: {"replica": {"over_lag": "drain"}}})
def test_paused_replay_under_write_load_goes_over_lag_and_returns(cluster, report):
    """node2 (over_lag = down) answers 'down #lag ...' and node3 (over_lag = drain) 'up 0%' once their
    replay is paused and the primary writes; both come back after pg_wal_replay_resume()."""
    c = cluster
    primary, r2, r3 = c.pg
    a2, a3 = c.agents[1], c.agents[2]
    primary.sql("CREATE TABLE it_lag (id int, pad text)")
    for r in (r2, r3):
        cl.wait_until(lambda r=r: r.sql1("SELECT to_regclass('it_lag') IS NOT NULL"), 5, desc=f"{r.name} to replay")
    assert cl.parse_pct(a2.ask("replica")) and cl.parse_pct(a3.ask("replica"))

    r2.pause_replay()
    r3.pause_replay()
    t0 = time.monotonic()
    answers = None
    written = 0
    while time.monotonic() - t0 < 20:
        primary.sql("INSERT INTO it_lag SELECT g, repeat('x', 900) FROM generate_series(1, 4000) g")
        written += 4000
        answers = (a2.ask("replica"), a3.ask("replica"))
        if LAG_RE.match(answers[0]) and answers[1] == "up 0%":
            break
    lag_bytes = primary.sql1("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication "
                             "WHERE application_name = 'node2'")
    report(f"over the lag limit after {time.monotonic() - t0:.1f}s of writes ({written} rows, node2 replay "
           f"{int(lag_bytes or 0) >> 20} MB behind): node2 {answers[0]!r}, node3 {answers[1]!r}")
    assert LAG_RE.match(answers[0]), f"node2 (over_lag = down, replay paused) answered {answers[0]!r}"
    assert answers[1] == "up 0%", f"node3 (over_lag = drain, replay paused) answered {answers[1]!r}"

    def haproxy_sees_it():
        st = c.haproxy.states("be_replicas")
        return st["node2"][0].startswith("DOWN") and st["node3"][0].startswith("UP") and st["node3"][1] == 0 and st
    cl.wait_until(haproxy_sees_it, 3, desc="be_replicas: node2 DOWN, node3 UP with weight 0")

    r2.resume_replay()
    r3.resume_replay()
    t1 = time.monotonic()
    cl.wait_until(lambda: cl.parse_pct(a2.ask("replica")) and cl.parse_pct(a3.ask("replica")), 15,
                  desc="both replicas 'up N%' (N > 0) after pg_wal_replay_resume()")
    report(f"both replicas up again {time.monotonic() - t1:.2f}s after resume")
    cl.wait_until(lambda: all(s.startswith("UP") and w > 0 for s, w in
                              (c.haproxy.states("be_replicas")[n] for n in ("node2", "node3"))), 5,
                  desc="be_replicas: node2 and node3 UP with weight > 0")
    counts = c.spread("read", 20)
    assert set(counts) == {"node2", "node3"}, f"reads after resume: {counts}"


@pytest.mark.cluster_conf(pgcheckd={1: {"replica": {"max_lag_bytes": 0, "max_lag_s": 2}}})
def test_replay_paused_goes_over_time_lag_limit(cluster, report):
    """With only a time limit (max_lag_s = 2) and a trickle of commits, a paused replica goes down with a
    'lag .../Ns' reason after about 2 s, not before 1 s, and is back after resume."""
    c = cluster
    primary, r2 = c.pg[0], c.pg[1]
    a2 = c.agents[1]
    primary.sql("CREATE TABLE it_lag_s (t timestamptz)")
    cl.wait_until(lambda: r2.sql1("SELECT to_regclass('it_lag_s') IS NOT NULL"), 5, desc="node2 to replay")
    r2.pause_replay()
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < 8:
        primary.sql("INSERT INTO it_lag_s VALUES (now())")
        answer = a2.ask("replica")
        seen.append((round(time.monotonic() - t0, 2), answer))
        if answer.startswith("down #"):
            break
        time.sleep(0.1)
    down_at, answer = seen[-1]
    report(f"time-lag limit 2 s: {answer!r} {down_at:.2f}s after pausing replay")
    assert re.match(r"^down #lag (\S+/)?\d+s$", answer), f"answers after pausing replay: {seen}"
    assert 1.0 <= down_at <= 6.0, f"down after {down_at:.2f}s with max_lag_s = 2: {seen}"
    r2.resume_replay()
    cl.wait_until(lambda: cl.parse_pct(a2.ask("replica")), 10, desc="node2 up after pg_wal_replay_resume()")


def _http_status(port, path, timeout=3):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.mark.cluster_conf(pgcheckd={1: {"replica": {"max_lag_bytes": "1MB", "max_lag_s": "3600"}}},
                          haproxy=False)
def test_request_limit_keeps_the_limit_it_does_not_name(cluster, report):
    """A replica over the configured byte limit (replay paused, the primary writes) stays down when a
    request names only a seconds limit (`replica lag_s=3600`, `/replica?lag_s=3600`): a parameter overrides
    only what it names. A request that names a byte limit it is under (`lag=1TB`) is up."""
    c = cluster
    primary, r2 = c.pg[0], c.pg[1]
    a2 = c.agents[1]
    primary.sql("CREATE TABLE it_req_lag (id int, pad text)")
    cl.wait_until(lambda: r2.sql1("SELECT to_regclass('it_req_lag') IS NOT NULL"), 5, desc="node2 to replay")
    assert cl.parse_pct(a2.ask("replica"))
    r2.pause_replay()
    try:
        primary.sql("INSERT INTO it_req_lag SELECT g, repeat('x', 900) FROM generate_series(1, 4000) g")
        cl.wait_until(lambda: LAG_RE.match(a2.ask("replica")), 10, desc="node2 over the 1MB byte limit")
        answers = {req: a2.ask(req) for req in ("replica", "replica lag_s=3600", "replica lag_s=5",
                                                 "read-only lag_s=3600", "replica lag=1TB")}
        http = {path: _http_status(a2.port, path) for path in ("/replica", "/replica?lag_s=3600",
                                                               "/read-only?lag_s=3600", "/replica?lag=1TB")}
        report(f"replay paused, over 1MB: {answers}; HTTP {http}")
        for req in ("replica", "replica lag_s=3600", "replica lag_s=5", "read-only lag_s=3600"):
            assert LAG_RE.match(answers[req]), f"{req!r} answered {answers[req]!r} over the configured byte limit"
        assert cl.parse_pct(answers["replica lag=1TB"]) is not None, answers
        assert http["/replica"] == 503 and http["/replica?lag_s=3600"] == 503 and \
            http["/read-only?lag_s=3600"] == 503, http
        assert http["/replica?lag=1TB"] == 200, http
    finally:
        r2.resume_replay()
    cl.wait_until(lambda: cl.parse_pct(a2.ask("replica lag_s=3600")), 10, desc="node2 up after resume")
