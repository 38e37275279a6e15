"""One PostgreSQL session per pgcheckd however many checks; the README shows conf/haproxy.cfg verbatim."""

import re
import threading
import time

import pytest

import cluster as cl


def test_one_postgresql_session_per_pgcheckd_during_check_burst(shared_cluster, report):
    c = shared_cluster
    count_sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgcheckd'"
    requests = [b"primary\n", b"replica\n", b"health\n", b"read-only\n", b"rw\n", b"standby\n"]
    per_thread, nthreads = 250, 8
    replies, errors = [], []
    lock = threading.Lock()

    def burst(k):
        mine, bad = [], []
        for j in range(per_thread):
            agent = c.agents[(k + j) % len(c.agents)]
            try:
                mine.append(agent.request(requests[(k * 7 + j) % len(requests)], timeout=2))
            except OSError as e:
                bad.append(repr(e))
        with lock:
            replies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=burst, args=(k,), daemon=True) for k in range(nthreads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    samples = []
    while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 60:
        samples.append(tuple(node.sql1(count_sql) for node in c.pg))
        time.sleep(0.01)
    for t in threads:
        t.join(5)
    took = time.monotonic() - t0
    samples.append(tuple(node.sql1(count_sql) for node in c.pg))
    report(f"{len(replies)} checks from {nthreads} threads in {took:.2f}s; pgcheckd sessions per node "
           f"sampled {len(samples)} times: {sorted(set(samples))}")
    assert not errors, f"{len(errors)} checks failed, e.g. {errors[:3]}"
    assert len(replies) == per_thread * nthreads
    bad = [r for r in replies if not re.match(rb"^(up \d{1,3}%|down #[^\r\n]+)\n$", r)]
    assert not bad, f"malformed replies: {bad[:5]}"
    assert all(s == (1, 1, 1) for s in samples), \
        f"pg_stat_activity rows with application_name 'pgcheckd' per node (node1..3) while checking: {samples}"


def _fenced_blocks(markdown):
    return [m.group(2) for m in re.finditer(r"(?ms)^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", markdown)]


def test_readme_shows_haproxy_cfg_verbatim():
    readme = cl.REPO / "README.md"
    if not readme.exists():
        pytest.skip("README.md does not exist yet; it must show conf/haproxy.cfg verbatim in a fenced block")
    cfg = cl.HAPROXY_CFG.read_text()
    blocks = _fenced_blocks(readme.read_text())
    assert any(b.rstrip("\n") == cfg.rstrip("\n") for b in blocks), \
        "README.md has no fenced block whose content is exactly conf/haproxy.cfg; the configuration the tests " \
        "run must be the one the README shows"
