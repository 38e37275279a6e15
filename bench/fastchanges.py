#!/usr/bin/python3
"""bench/fastchanges.py: how fast pgcheckd sees a role change and gets the node out of HAProxy.

  /usr/bin/python3 bench/fastchanges.py [stops|promote|splitbrain ...]   (default: all three)

- stops: a replica's fast and smart shutdown (ROUNDS each): ms from the signal to its pgcheckd answering
  `replica` down, and to the first refused PostgreSQL connection (both probed in tight loops);
- promote: ms from `pg_ctl promote -w` being called / returning to `primary` answering up;
- splitbrain: a replica promoted while the old primary runs on (peers configured, real HAProxy): ms from
  `pg_ctl promote -w` returning to the old primary answering down (fenced) and to HAProxy showing it DOWN,
  and the writes (new connection each, through the write frontend) that reached it after the return.
Environment: ROUNDS (3), WATCH=0 (no [pg] data_directory), PUSH=0 (no [haproxy] push_servers),
POLL (poll_interval_ms for stops/promote, 5000), PGCHECKD_BIN (compare another build). Numbers only:
nothing is asserted. Uses tests/integration/cluster.py (PostgreSQL, pgcheckd and HAProxy on loopback).
"""
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
import cluster as cl  # noqa: E402
import psycopg2  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
WATCH = os.environ.get("WATCH", "1") == "1"
PUSH = os.environ.get("PUSH", "1") == "1"


def ask(port, req):
    try:
        return cl.agent_request(port, (req + "\n").encode(), timeout=0.5).decode().strip()
    except OSError as e:
        return f"err {e}"


def refuses(node):
    try:
        psycopg2.connect(host="127.0.0.1", port=node.port, dbname="postgres", user="postgres",
                         connect_timeout=1).close()
        return False
    except psycopg2.Error:
        return True


def first_true(fn, limit=10.0, every=0.0005):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if fn():
            return time.monotonic()
        time.sleep(every)
    return None


def ms(t, t0):
    return None if t is None else (t - t0) * 1000


def summary(name, vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        print(f"{name:40s} (none)")
        return
    print(f"{name:40s} median {statistics.median(vals):8.1f}  max {max(vals):8.1f}  "
          f"[{', '.join(f'{v:.1f}' for v in vals)}]")


def watched_common():
    common = {"pg": {"poll_interval_ms": os.environ.get("POLL", "5000"), "stale_after_ms": "60000"}}
    if WATCH:
        common["pg"]["data_directory"] = "@datadir"
    return common


def bench_stops():
    res = {}
    with cl.Cluster(replicas=1, pgcheckd_common=watched_common()) as c:
        c.start(haproxy=False)
        r, a = c.pg[1], c.agents[1]
        for mode, sig in (("fast", signal.SIGINT), ("smart", signal.SIGTERM)):
            for _ in range(ROUNDS):
                cl.wait_until(lambda: ask(a.port, "replica").startswith("up"), 30, desc="replica up")
                out = {}
                th = [threading.Thread(target=lambda: out.update(
                          down=first_true(lambda: ask(a.port, "replica").startswith("down")))),
                      threading.Thread(target=lambda: out.update(refused=first_true(lambda: refuses(r), every=0.002)))]
                for t in th:
                    t.start()
                time.sleep(0.05)
                t0 = time.monotonic()
                os.kill(r.proc.pid, sig)
                for t in th:
                    t.join()
                try:
                    r.proc.wait(20)
                    stuck = False
                except Exception:  # a smart shutdown waiting for a session that never ends
                    stuck = True
                    os.kill(r.proc.pid, signal.SIGINT)
                    r.proc.wait(30)
                res.setdefault(f"{mode}: signal -> agent down (ms)", []).append(ms(out["down"], t0))
                res.setdefault(f"{mode}: signal -> PG refuses (ms)", []).append(ms(out["refused"], t0))
                res.setdefault(f"{mode}: shutdown stuck >20 s (count)", []).append(1.0 if stuck else 0.0)
                r.start()
    return res


def bench_promote():
    res = {}
    for _ in range(ROUNDS):
        with cl.Cluster(replicas=1, pgcheckd_common=watched_common()) as c:
            c.start(haproxy=False)
            p, pa = c.pg[1], c.agents[1]
            out = {}
            th = threading.Thread(target=lambda: out.update(up=first_true(lambda: ask(pa.port, "primary").startswith("up"))))
            th.start()
            t_call = time.monotonic()
            p.promote()
            t_ret = time.monotonic()
            th.join()
            res.setdefault("promote called -> primary up (ms)", []).append(ms(out["up"], t_call))
            res.setdefault("promote returned -> primary up (ms)", []).append(ms(out["up"], t_ret))
    return res


def bench_splitbrain():
    res = {}
    for _ in range(ROUNDS):
        c = cl.Cluster(replicas=2)
        ports = c.ports["agent"]
        conf = {}
        for i in range(c.n):
            conf[i] = {"peers": {"addresses": ", ".join(f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i)}}
            if WATCH:
                conf[i]["pg"] = {"data_directory": "@datadir"}
            if PUSH:
                conf[i]["haproxy"] = {"runtime_api": f"127.0.0.1:{c.ports['api']}",
                                      "push_servers": f"be_primary/node{i + 1}:primary, be_replicas/node{i + 1}:replica"}
        c.pgcheckd_conf = conf
        c.start()
        try:
            c.through("write", "CREATE TABLE bench_w (port int)")
            cl.wait_until(lambda: all(r.sql1("SELECT count(*) FROM pg_class WHERE relname = 'bench_w'") == 1
                                      for r in c.pg[1:]), 10, desc="the table on the replicas")
            stop, writes, out = threading.Event(), [], {}

            def writer():
                while not stop.is_set():
                    try:
                        port = c.through("write", "INSERT INTO bench_w VALUES (inet_server_port()) RETURNING port",
                                         timeout=1)[0][0]
                        writes.append((time.monotonic(), port))
                    except psycopg2.Error:
                        time.sleep(0.001)
            w = threading.Thread(target=writer)
            w.start()
            time.sleep(0.3)
            th = [threading.Thread(target=lambda: out.update(
                      fenced=first_true(lambda: ask(ports[0], "primary").startswith("down"), 5))),
                  threading.Thread(target=lambda: out.update(
                      ha=first_true(lambda: c.haproxy.status("be_primary", "node1").startswith("DOWN"), 5, 0.001)))]
            for t in th:
                t.start()
            c.pg[1].promote()
            t_ret = time.monotonic()
            for t in th:
                t.join()
            time.sleep(0.5)
            stop.set()
            w.join()
            res.setdefault("promote returned -> old primary fenced (ms)", []).append(ms(out["fenced"], t_ret))
            res.setdefault("promote returned -> old primary DOWN in HAProxy (ms)", []).append(ms(out["ha"], t_ret))
            res.setdefault("writes to the old primary after the return", []).append(
                float(sum(1 for t, p in writes if p == c.pg[0].port and t > t_ret)))
        finally:
            c.close()
    return res


def main():
    which = sys.argv[1:] or ["stops", "promote", "splitbrain"]
    print(f"pgcheckd {cl.PGCHECKD_BIN}; data_directory watched: {WATCH}; push_servers: {PUSH}; rounds: {ROUNDS}")
    for name in which:
        for k, v in {"stops": bench_stops, "promote": bench_promote, "splitbrain": bench_splitbrain}[name]().items():
            summary(k, v)


if __name__ == "__main__":
    main()
