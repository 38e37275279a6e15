"""An idle primary does not make its replicas look behind: after a quiet spell longer than the time lag
limit, a few bytes of WAL without a commit (a CHECKPOINT record) must not take a caught-up
replica out of the read pool, while a replica whose replay really stalls still goes over the limit."""

import time

import pytest

import cluster as cl


@pytest.mark.cluster_conf(common={"replica": {"max_lag_s": "2"}, "weight": {"lag_soft_s": "1"}},
                          haproxy=False)
def test_wal_without_commits_after_idle_spell_keeps_replicas_up(cluster):
    c = cluster
    c.pg[0].sql("CREATE TABLE t (x int)")
    c.pg[0].sql("INSERT INTO t VALUES (1)")
    time.sleep(3.5)  # no commit for longer than max_lag_s
    # Hold replay so that WAL without a commit stays received-but-not-replayed (normally that lasts
    # milliseconds, which a sample catches only by chance): "now - last replayed commit" is now 3.5 s.
    c.pg[1].pause_replay()
    try:
        c.pg[0].sql("CHECKPOINT")
        cl.wait_until(lambda: c.pg[1].sql1("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"), 5,
                      desc="WAL received but not replayed")
        t0 = time.monotonic()
        answers = []
        while time.monotonic() - t0 < 1.0:
            answers.append(c.agents[1].ask("replica"))
            time.sleep(0.02)
        down = [a for a in answers if not a.startswith("up")]
        assert not down, f"{len(down)} of {len(answers)} answers down right after idle WAL: {sorted(set(down))}"
        # held behind for longer than the limit, it does go over it (pgcheckd bounds what it saw)
        cl.wait_until(lambda: c.agents[1].ask("replica").startswith("down #lag"), 5, desc="over the limit")
    finally:
        c.pg[1].resume_replay()
    cl.wait_until(lambda: c.agents[1].ask("replica").startswith("up"), 5, desc="back after resume")
    # a replay that really stalls behind new commits still goes over the limit
    c.pg[1].pause_replay()
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and not c.agents[1].ask("replica").startswith("down #lag"):
            c.pg[0].sql("INSERT INTO t VALUES (2)")
            time.sleep(0.1)
        assert c.agents[1].ask("replica").startswith("down #lag")
    finally:
        c.pg[1].resume_replay()
