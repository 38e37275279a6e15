"""Freshness by position: `replica min_lsn=X/Y` (and `/replica?min_lsn=X/Y`) is up only on a replica that
has replayed X/Y, against a real primary and two streaming replicas.

The LSN is the one the README's read-your-writes recipe takes: `SELECT pg_current_wal_insert_lsn()` on
the primary, in the writing session, after its COMMIT. Not `pg_current_wal_lsn()`: that is how far WAL has
been written out, and with `synchronous_commit = off` (as in these clusters) a COMMIT returns before its
record is written, so that position can be before the commit and a replica that replayed it may not see
the write (the control in the loop below counts how often).
"""

import http.client
import random
import re

import pytest

import cluster as cl

# Lag limits out of the way, so that a replica with replay paused is down for its position, not its lag;
# samples every 100 ms (the minimum), so that a replica is seen to have replayed a write soon after.
CONF = {"pg": {"poll_interval_ms": "100"},
        "replica": {"max_lag_s": "3600", "max_lag_bytes": "1GB"}}


def http_status(port, path, timeout=3):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def is_up(answer):
    # "up N%" for a whole request line; a word-order-free match (see the brief on unasked answers)
    return re.fullmatch(r"(up \d+%|\d+% up)", answer) is not None


def write_and_lsn(conn, value, with_write_lsn=False):
    """One committed write; the primary's WAL insert position after its COMMIT, in the same session (and,
    with_write_lsn, also pg_current_wal_lsn() taken at the same moment)."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO rw (v) VALUES (%s) RETURNING id", (value,))
        row_id = cur.fetchone()[0]
        cur.execute("SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_lsn()::text")
        insert_lsn, write_lsn = cur.fetchone()
        return (row_id, insert_lsn, write_lsn) if with_write_lsn else (row_id, insert_lsn)


def setup_table(c):
    c.pg[0].sql("CREATE TABLE rw (id bigserial PRIMARY KEY, v text NOT NULL)")
    lsn = c.pg[0].sql1("SELECT pg_current_wal_insert_lsn()::text")
    for agent in c.agents[1:]:
        cl.wait_until(lambda a=agent: is_up(a.ask(f"replica min_lsn={lsn}")), 15,
                      desc=f"{agent} up for {lsn}")


@pytest.mark.cluster_conf(common=CONF, haproxy=False)
def test_replica_with_replay_paused_is_down_for_a_later_lsn_until_resumed(cluster, report):
    c = cluster
    setup_table(c)
    paused, fresh = c.pg[1], c.pg[2]
    paused_agent, fresh_agent = c.agents[1], c.agents[2]
    paused.pause_replay()
    cl.wait_until(lambda: paused.sql1("SELECT pg_get_wal_replay_pause_state()") == "paused", 15,
                  desc="replay paused on node 1")
    conn = c.pg[0].connect()
    try:
        row_id, lsn = write_and_lsn(conn, "paused")
    finally:
        conn.close()
    replayed = paused.sql1("SELECT pg_last_wal_replay_lsn()::text")
    assert lsn_int(replayed) < lsn_int(lsn), (replayed, lsn)
    # the paused replica has received the write (streaming) but not replayed it
    cl.wait_until(lambda: lsn_int(paused.sql1("SELECT pg_last_wal_receive_lsn()::text")) >= lsn_int(lsn), 15,
                  desc="node 1 received the write")
    assert paused.sql1("SELECT count(*) FROM rw WHERE id = %s", (row_id,)) == 0

    # the other replica replays it and answers up for it, on both protocols
    cl.wait_until(lambda: is_up(fresh_agent.ask(f"replica min_lsn={lsn}")), 15, desc="node 2 up for the write")
    assert http_status(fresh_agent.port, f"/replica?min_lsn={lsn}") == 200
    assert http_status(fresh_agent.port, f"/read-only?min_lsn={lsn}") == 200
    assert fresh.sql1("SELECT count(*) FROM rw WHERE id = %s", (row_id,)) == 1

    # the paused one: down, with what it has replayed; 503 over HTTP; plain `replica` stays up
    answers = {}
    for req in (f"replica min_lsn={lsn}", f"read-only min_lsn={lsn}", f"health min_lsn={lsn}"):
        answers[req] = paused_agent.ask(req)
        assert answers[req] == f"down #behind {replayed.upper()}", answers
    assert is_up(paused_agent.ask("replica"))
    assert is_up(paused_agent.ask(f"replica min_lsn={replayed}"))
    assert http_status(paused_agent.port, f"/replica?min_lsn={lsn}") == 503
    assert http_status(paused_agent.port, f"/read-only?min_lsn={lsn.replace('/', '%2F')}") == 503
    # the primary has every LSN it wrote: read-only is up there, replica is not
    assert is_up(c.agents[0].ask(f"read-only min_lsn={lsn}"))
    assert c.agents[0].ask(f"replica min_lsn={lsn}") == "down #is-primary"
    report(f"paused replica: {answers[f'replica min_lsn={lsn}']} for {lsn}; other replica up")

    # malformed positions are bad requests, on both protocols
    for bad in ("0/", "3000060", "100000000/0", "0/3000060x", "-1/0"):
        assert paused_agent.ask(f"replica min_lsn={bad}") == "down #bad-request", bad
        assert fresh_agent.ask(f"replica min_lsn={bad}") == "down #bad-request", bad
        assert http_status(fresh_agent.port, f"/replica?min_lsn={bad}") == 400, bad

    paused.resume_replay()
    cl.wait_until(lambda: is_up(paused_agent.ask(f"replica min_lsn={lsn}")), 15, desc="node 1 up once resumed")
    assert http_status(paused_agent.port, f"/replica?min_lsn={lsn}") == 200
    assert paused.sql1("SELECT count(*) FROM rw WHERE id = %s", (row_id,)) == 1


@pytest.mark.cluster_conf(common=CONF, haproxy=False)
def test_read_your_writes_every_read_sees_its_write(cluster, report):
    """1000 writes, one a loop turn; the read of each comes 0 to 150 turns later (0 to a few hundred ms, as an
    application reads some time after it wrote), while the writes go on. Each read goes to a replica whose
    pgcheckd answers `replica min_lsn=<the write's LSN>` up, else to the primary. Every read must see its
    write. Controls, counted and not asserted: at the same moment, a read on replica 2 without asking (what a
    pool of plain `replica` checks gives), and a read on replica 1 when it answers up for
    pg_current_wal_lsn() instead of the insert position."""
    c = cluster
    setup_table(c)
    writes, max_delay = 1000, 150
    rnd = random.Random(14)
    wconn = c.pg[0].connect()
    rconns = [p.connect() for p in c.pg]
    misses = fallbacks = unchecked_misses = write_lsn_reads = write_lsn_misses = 0
    by_node = [0] * c.n
    pending = []  # (turn due, row id, insert LSN, write LSN)

    def has_row(n, row_id):
        with rconns[n].cursor() as cur:
            cur.execute("SELECT count(*) FROM rw WHERE id = %s", (row_id,))
            return cur.fetchone()[0] == 1

    try:
        for turn in range(writes + max_delay + 1):
            if turn < writes:
                row_id, lsn, write_lsn = write_and_lsn(wconn, f"w{turn}", with_write_lsn=True)
                pending.append((turn + rnd.randint(0, max_delay), row_id, lsn, write_lsn))
            due = [p for p in pending if p[0] <= turn]
            pending = [p for p in pending if p[0] > turn]
            for _, row_id, lsn, write_lsn in due:
                unchecked_misses += not has_row(2, row_id)
                if is_up(c.agents[1].ask(f"replica min_lsn={write_lsn}")):
                    write_lsn_reads += 1
                    write_lsn_misses += not has_row(1, row_id)
                target = 0
                for n in range(1, c.n):
                    if is_up(c.agents[n].ask(f"replica min_lsn={lsn}")):
                        target = n
                        break
                fallbacks += target == 0
                by_node[target] += 1
                misses += not has_row(target, row_id)
    finally:
        wconn.close()
        for rc in rconns:
            rc.close()
    report(f"read-your-writes: {writes} writes, {misses} misses; reads by node {by_node}; "
           f"{fallbacks} fell back to the primary (no replica had replayed the write yet); "
           f"control without min_lsn: {unchecked_misses} of {writes} reads on node 2 missed their write; "
           f"control with pg_current_wal_lsn(): {write_lsn_misses} of {write_lsn_reads} reads on node 1 missed")
    assert not pending
    assert sum(by_node) == writes
    assert misses == 0
    assert by_node[1] + by_node[2] > 0, "no read went to a replica"
