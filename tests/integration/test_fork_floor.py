"""A replica left on the old timeline is a fork only if it replayed past where the new timeline began.

The promoted node's pgcheckd says in its peer line how far it had replayed on the parent timeline
(tl_from=T:LSN, a floor of the switch point); a replica on T that replayed no further holds a prefix of
the new timeline and keeps serving reads, one that replayed further is down #fork.
"""

import time

import cluster as cl
from test_fencing import peered_cluster, status


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def replayed(c, i):
    return lsn(c.pg[i].sql1("SELECT pg_last_wal_replay_lsn()::text"))


def sampled_replay(c, i):
    st = status(c, i)
    return lsn(st["replay_lsn"]) if st.get("replay_lsn") else 0


def floor_of(c, i):
    """The tl_from=T:LSN node i's pgcheckd tells its peers, as (T, LSN), or None."""
    line = c.agents[i].ask("peer-state")
    for field in line.split():
        if field.startswith("tl_from="):
            t, l = field[len("tl_from="):].split(":")
            return int(t), lsn(l)
    return None


def caught_up(c, end):
    """node2 and node3 replayed to end, and node2's pgcheckd sampled it (the floor it will take)."""
    cl.wait_until(lambda: replayed(c, 1) >= end and replayed(c, 2) >= end, 10, desc="replicas to replay")
    cl.wait_until(lambda: sampled_replay(c, 1) >= end, 5, interval=0.01, desc="node2's pgcheckd to sample it")


def test_replica_on_the_parent_timeline_below_the_floor_serves_then_forks_past_it():
    """node2 promoted while node1 runs on (idle, then taking writes) and node3 streams from node1: while
    node3 has replayed no more than node2 had, it answers replica up; once it replays node1's new
    writes it is down #fork timeline 1 behind 2."""
    c = peered_cluster()
    try:
        c.pg[0].sql("CREATE TABLE t (x int)")
        c.pg[0].sql("INSERT INTO t SELECT generate_series(1, 1000)")
        c.pg[0].sql("CHECKPOINT")  # logs its standby snapshot: node1 then writes nothing while idle
        end = lsn(c.pg[0].sql1("SELECT pg_current_wal_lsn()::text"))
        caught_up(c, end)
        c.pg[1].promote()
        cl.wait_until(lambda: status(c, 2)["peers"]["newest_primary_timeline"] == 2, 5, desc="node3 hears node2")
        assert status(c, 2)["timeline"] == 1
        answers = set()
        for _ in range(20):
            answers.add(c.agents[2].ask("replica"))
            time.sleep(0.05)
        assert all(a.startswith("up ") for a in answers), answers
        parent, floor = floor_of(c, 1)
        assert parent == 1 and floor >= end and replayed(c, 2) <= floor, (parent, hex(floor), hex(end))
        # node1 takes writes node2 never saw; node3 replays them: its data is no longer a prefix of timeline 2
        c.pg[0].sql("INSERT INTO t SELECT generate_series(1, 10)")
        past = lsn(c.pg[0].sql1("SELECT pg_current_wal_lsn()::text"))
        cl.wait_until(lambda: replayed(c, 2) >= past, 10, desc="node3 to replay node1's new writes")
        cl.wait_until(lambda: c.agents[2].ask("replica") == "down #fork timeline 1 behind 2", 5, interval=0.01,
                      desc="node3 down as a fork")
    finally:
        c.close()


def test_switchover_replica_re_pointed_to_the_promoted_node_is_never_a_fork():
    """The planned switchover of bench/impact.py: fast stop of node1, promote node2, re-point node3 at
    it. node3 replays timeline 1 no further than node2 had (its switch point): at no sample is it
    down #fork, and it stays up while it follows node2 onto timeline 2."""
    c = peered_cluster()
    try:
        c.pg[2].sql("ALTER SYSTEM SET wal_retrieve_retry_interval = '100ms'")
        c.pg[2].sql("SELECT pg_reload_conf()")
        c.pg[0].sql("CREATE TABLE t (x int)")
        c.pg[0].sql("INSERT INTO t SELECT generate_series(1, 1000)")
        c.pg[0].stop()  # fast: its shutdown checkpoint reaches both replicas
        end = max(replayed(c, 1), replayed(c, 2))
        caught_up(c, end)
        c.pg[1].promote()
        c.pg[2].follow(c.pg[1])
        answers = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3:
            answers.append((c.agents[2].ask("replica"), status(c, 2).get("timeline")))
            time.sleep(0.01)
        forks = [a for a, _ in answers if "fork" in a]
        assert not forks, f"{len(forks)} of {len(answers)} answers: {forks[:3]}"
        assert floor_of(c, 1) is not None and floor_of(c, 1)[0] == 1
        cl.wait_until(lambda: status(c, 2).get("timeline") == 2, 10, desc="node3 to follow onto timeline 2")
        cl.wait_until(lambda: c.agents[2].ask("replica").startswith("up"), 5, desc="node3 up on timeline 2")
        print("timelines node3 answered on:", sorted({tl for _, tl in answers if tl is not None}))
    finally:
        c.close()


def test_replica_not_re_pointed_after_a_switchover_keeps_serving():
    """Fast stop of node1, promote node2, node3 left pointing at node1 (no WAL receiver): it serves as a
    replica whose upstream went away, while it is under the lag limits; never #fork."""
    c = peered_cluster()
    try:
        c.pg[0].sql("CREATE TABLE t (x int)")
        c.pg[0].stop()
        caught_up(c, max(replayed(c, 1), replayed(c, 2)))
        c.pg[1].promote()
        cl.wait_until(lambda: status(c, 2)["peers"]["newest_primary_timeline"] == 2, 5, desc="node3 hears node2")
        answers = set()
        for _ in range(20):
            answers.add(c.agents[2].ask("replica"))
            time.sleep(0.05)
        assert all(a.startswith("up ") for a in answers), answers
    finally:
        c.close()
