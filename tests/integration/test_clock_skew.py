"""Lag in seconds must not depend on the hosts' clocks agreeing. One PostgreSQL runs with its clock shifted
by libfaketime (Debian's libfaketime, LD_PRELOAD on that postmaster): a replica whose clock is behind the
primary's must still go over the time lag limit when its replay stalls, and a replica whose clock is ahead
must not look lagging while it keeps up."""

import re
import threading
import time
from pathlib import Path

import pytest

import cluster as cl

pytestmark = pytest.mark.skipif(not Path(cl.LIBFAKETIME).exists(),
                                reason=f"{cl.LIBFAKETIME} missing (Debian package libfaketime)")

LAG_RE = re.compile(r"^down #lag \S+$")
# seconds only: bytes do not come into it
SECONDS_ONLY = {"replica": {"max_lag_bytes": "0", "max_lag_s": "10"}}


def _clock_offset_s(c):
    """The replica's wall clock minus the primary's, in seconds (to within the time two queries take)."""
    p_now = c.pg[0].sql1("SELECT extract(epoch FROM clock_timestamp())")
    r_now = c.pg[1].sql1("SELECT extract(epoch FROM clock_timestamp())")
    return float(r_now - p_now)


@pytest.mark.cluster_conf(replicas=1, haproxy=False, pg_env={1: cl.faketime_env("-60s")},
                          pgcheckd={1: SECONDS_ONLY})
def test_replica_clock_behind_still_goes_over_the_time_limit(cluster, report):
    """Replica clock 60 s behind, replay paused while the primary commits, 20 s later: over a 10 s limit,
    for `replica lag_s=10` and for `replica` (configured 10 s); also for a pgcheckd started only then."""
    c = cluster
    primary, r2 = c.pg
    a2 = c.agents[1]
    offset = _clock_offset_s(c)
    assert -62 < offset < -58, f"the replica's clock is {offset:.1f}s from the primary's, not -60s"
    primary.sql("CREATE TABLE it_skew (t timestamptz)")
    cl.wait_until(lambda: r2.sql1("SELECT to_regclass('it_skew') IS NOT NULL"), 5, desc="node2 to replay")
    cl.wait_until(lambda: cl.parse_pct(a2.ask("replica")), 5, desc="node2 up while it keeps up")
    r2.pause_replay()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            primary.sql("INSERT INTO it_skew VALUES (now())")
            time.sleep(1)
        answers = {req: a2.ask(req) for req in ("replica lag_s=10", "replica", "read-only")}
        behind = r2.sql1("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()")
        report(f"replica clock {offset:+.1f}s, replay paused {time.monotonic() - t0:.1f}s: {answers}")
        assert behind
        for req, answer in answers.items():
            assert LAG_RE.match(answer), f"{req!r} answered {answer!r} with replay paused 20 s (clock -60 s)"
        # a pgcheckd that starts now has seen none of it: the commit age alone must tell
        a2.stop()
        a2.start()
        first = cl.wait_until(lambda: (lambda a: not a.startswith("down #starting") and a)(a2.ask("replica")),
                              10, desc="a first sample")
        report(f"a restarted pgcheckd first answers {first!r}")
        assert LAG_RE.match(first), f"a freshly started pgcheckd answered {first!r}"
    finally:
        r2.resume_replay()
    cl.wait_until(lambda: cl.parse_pct(a2.ask("replica")), 10, desc="node2 up after resume")


def _writer(primary, stop, stats):
    conn = primary.connect()
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("INSERT INTO it_skew_load SELECT g, repeat('x', 200) FROM generate_series(1, 500) g")
                stats["commits"] += 1
    finally:
        conn.close()


@pytest.mark.cluster_conf(replicas=1, haproxy=False, pg_env={1: cl.faketime_env("+60s")},
                          pgcheckd={1: SECONDS_ONLY})
def test_replica_clock_ahead_does_not_look_lagging_while_it_keeps_up(cluster, report):
    """Replica clock 60 s ahead, the primary committing without pause, pgcheckd started in the middle of
    it (so it has not seen the replica idle): after a few seconds every answer is up; then, with replay
    paused until over the limit and resumed (writes stopped), it is back up once it has caught up, well
    before the 60 s offset."""
    c = cluster
    primary, r2 = c.pg
    a2 = c.agents[1]
    offset = _clock_offset_s(c)
    assert 58 < offset < 62, f"the replica's clock is {offset:+.1f}s from the primary's, not +60s"
    primary.sql("CREATE TABLE it_skew_load (id int, pad text)")
    cl.wait_until(lambda: r2.sql1("SELECT to_regclass('it_skew_load') IS NOT NULL"), 5, desc="node2 to replay")
    stop, stats = threading.Event(), {"commits": 0}
    writer = threading.Thread(target=_writer, args=(primary, stop, stats), daemon=True)
    writer.start()
    try:
        time.sleep(1)
        a2.stop()
        a2.start()
        t0 = time.monotonic()
        seen = []
        while time.monotonic() - t0 < 8:
            seen.append((round(time.monotonic() - t0, 2), a2.ask("replica")))
            time.sleep(0.1)
        late = [(t, a) for t, a in seen if t >= 3 and not a.startswith("up")]

        report(f"replica clock {offset:+.1f}s, {stats['commits']} commits: answers {sorted({a for _, a in seen})}, "
               f"{len(late)} not up after 3 s")
        assert not late, f"answers not up 3 s after pgcheckd started, while replay keeps up: {late}"

        r2.pause_replay()
        cl.wait_until(lambda: LAG_RE.match(a2.ask("replica")), 20, desc="over the limit with replay paused")
        stop.set()
        writer.join(10)
        r2.resume_replay()
        t1 = time.monotonic()
        cl.wait_until(lambda: cl.parse_pct(a2.ask("replica")), 30, desc="up again after resume")
        report(f"up {time.monotonic() - t1:.2f}s after resume")
    finally:
        stop.set()
        writer.join(10)
        r2.resume_replay()
