#!/usr/bin/env python3
"""soak.py: pgcheckd at a fixed check rate for a chosen time, with PostgreSQL faults on a schedule.

    make soak                               # SOAK_SECONDS (300) at SOAK_RATE (2000) checks/s
    python3 tests/soak/soak.py --seconds 120 --rate 2000 --workers 4

Starts the integration tests' cluster (tests/integration/cluster.py: a primary, two streaming replicas,
one pgcheckd each, HAProxy on conf/haproxy.cfg), then runs worker processes that together send `rate`
checks a second, paced on a fixed schedule: `primary` and `replica` to every node, over the agent line
protocol and HTTP, one connection each. Meanwhile faults are injected on a fixed cycle:

    +2 s   freeze node2 (a replica: SIGSTOP on its postmaster and every child) for 5 s
    +9 s   stop node3 (a replica, fast shutdown) for 4 s, then start it
    +15 s  freeze node1 (the primary) for 3 s
    +20 s  the next cycle

Every answer is checked against the state of its node when the answer arrived. A wrong answer is
  - `up` to `primary` from a node that is not the writable primary (a replica),
  - `up` to `replica` from the primary,
  - `up` to anything from a node frozen or stopped since more than DETECT_BOUND before the check was sent
    (poll_interval_ms + query_timeout_ms + 1 s: the documented detection time plus slack).
A fault's start is recorded once it is complete (all processes stopped) and its end before it is undone,
so a slow or early state change never counts as wrong. A check that gets no complete answer within 2 s
is an error. The run fails (exit 1) on any wrong answer or error.

Printed at the end: checks answered (and the rate achieved), wrong answers, errors, latency p50/p99/max
(connect to close, per protocol and overall), the faults injected, and each pgcheckd's RSS and open fd
count at the start (after a warm-up) and at the end (after the last fault has healed).
"""

import argparse
import array
import multiprocessing as mp
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import cluster as cl  # noqa: E402

POLL = 0.2
QUERY_TIMEOUT = 0.5
DETECT_BOUND = POLL + QUERY_TIMEOUT + 1.0
ANSWER_TIMEOUT = 2.0
REQUESTS = ("primary", "replica")
PROTOCOLS = ("agent", "http")

# shared state per node: [frozen_since, stopped_since, is_primary] (monotonic seconds; 0 = not)
F_FROZEN, F_STOPPED, F_PRIMARY, NF = 0, 1, 2, 3


def resources(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def one_check(port, req, proto):
    """Send one check; return (up: bool or None for no/garbled answer, answer text)."""
    if proto == "agent":
        data = (req + "\n").encode()
    else:
        data = f"GET /{req} HTTP/1.0\r\n\r\n".encode()
    deadline = time.monotonic() + ANSWER_TIMEOUT
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT) as s:
        s.sendall(data)
        while True:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
            if proto == "agent" and b"\n" in buf:
                break
    if proto == "agent":
        m = re.match(rb"^(up \d{1,3}%|down #[^\n]+)\n$", buf)
        if not m:
            return None, buf[:80].decode(errors="replace")
        text = m.group(1).decode()
        return text.startswith("up "), text
    m = re.match(rb"^HTTP/1\.[01] (\d{3}) ", buf)
    if not m or m.group(1) not in (b"200", b"503"):
        return None, buf[:80].decode(errors="replace")
    return m.group(1) == b"200", m.group(1).decode()


def worker(k, nworkers, rate, t_start, t_end, ports, state, out_q):
    """Checks at rate/nworkers a second on a fixed schedule from t_start to t_end (monotonic)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    per = rate / nworkers
    combos = [(n, req, proto) for n in range(len(ports)) for req in REQUESTS for proto in PROTOCOLS]
    lat = {p: array.array("f") for p in PROTOCOLS}
    answered = errors = wrong = skipped = healthy_down = 0
    wrong_samples, error_samples = [], []
    i = 0
    offset = k / rate  # spread the workers over the schedule
    while True:
        due = t_start + offset + i / per
        now = time.monotonic()
        if due >= t_end:
            break
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:  # more than a second behind: drop what was missed, count it
            missed = int((now - due) * per)
            skipped += missed
            i += missed
            continue
        node, req, proto = combos[(i * nworkers + k) % len(combos)]
        i += 1
        t_send = time.monotonic()
        try:
            up, text = one_check(ports[node], req, proto)
        except OSError as e:
            up, text = None, f"<{e!r}>"
        t_recv = time.monotonic()
        if up is None:
            errors += 1
            if len(error_samples) < 10:
                error_samples.append((round(t_send - t_start, 3), f"node{node + 1}", req, proto, text))
            continue
        answered += 1
        lat[proto].append((t_recv - t_send) * 1000.0)
        base = node * NF
        frozen, stopped, is_primary = state[base + F_FROZEN], state[base + F_STOPPED], state[base + F_PRIMARY]
        why = None
        if up:
            if req == "primary" and not is_primary:
                why = "up to primary from a replica"
            elif req == "replica" and is_primary:
                why = "up to replica from the primary"
            elif frozen and t_send > frozen + DETECT_BOUND:
                why = f"up from a node frozen {t_send - frozen:.2f}s before the check"
            elif stopped and t_send > stopped + DETECT_BOUND:
                why = f"up from a node stopped {t_send - stopped:.2f}s before the check"
        elif not frozen and not stopped and (req == "primary") == bool(is_primary):
            healthy_down += 1
        if why:
            wrong += 1
            if len(wrong_samples) < 20:
                wrong_samples.append((round(t_send - t_start, 3), f"node{node + 1}", req, proto, text, why))
    out_q.put({"k": k, "answered": answered, "errors": errors, "wrong": wrong, "skipped": skipped,
               "healthy_down": healthy_down, "wrong_samples": wrong_samples, "error_samples": error_samples,
               "lat": {p: a.tobytes() for p, a in lat.items()}})


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))]


class Injector:
    """The fault schedule, run in the main process; records each fault's start and end in the shared state."""

    def __init__(self, c, state, say):
        self.c, self.state, self.say = c, state, say
        self.counts = {}
        self.t0 = time.monotonic()

    def _set(self, node, field, value):
        self.state[node * NF + field] = value

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def freeze(self, node, seconds, until):
        pg = self.c.pg[node]
        pg.freeze()
        self._set(node, F_FROZEN, time.monotonic())   # recorded once every process is stopped
        self.count(f"freeze {pg.name} {seconds:g}s")
        self.sleep(seconds, until)
        self._set(node, F_FROZEN, 0.0)                # cleared before SIGCONT
        pg.thaw()

    def stop_start(self, node, seconds, until):
        pg = self.c.pg[node]
        pg.stop(mode="fast", timeout=30)
        self._set(node, F_STOPPED, time.monotonic())
        self.count(f"stop {pg.name} {seconds:g}s")
        self.sleep(seconds, until)
        self._set(node, F_STOPPED, 0.0)
        pg.start(timeout=60)

    @staticmethod
    def sleep(seconds, until):
        time.sleep(max(0.0, min(seconds, until - time.monotonic())))

    def run(self, t_end):
        """Cycles of 20 s until less than a whole cycle is left; every fault is undone before returning."""
        cycle = 0
        while time.monotonic() + 20.0 <= t_end:
            c0 = time.monotonic()
            self.sleep(2.0, t_end)
            self.freeze(1, 5.0, t_end)
            self.sleep(c0 + 9.0 - time.monotonic(), t_end)
            self.stop_start(2, 4.0, t_end)
            self.sleep(c0 + 15.0 - time.monotonic(), t_end)
            self.freeze(0, 3.0, t_end)
            self.sleep(c0 + 20.0 - time.monotonic(), t_end)
            cycle += 1
            self.say(f"  {time.monotonic() - self.t0:5.0f}s  cycle {cycle} done")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)))
    ap.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 2000)))
    ap.add_argument("--workers", type=int, default=int(os.environ.get("SOAK_WORKERS", 4)))
    args = ap.parse_args()
    if not os.access(cl.PGCHECKD_BIN, os.X_OK):
        print(f"soak: pgcheckd not found at {cl.PGCHECKD_BIN} (run make)", file=sys.stderr)
        return 2

    def say(msg):
        print(msg, flush=True)

    say("soak: starting a primary, two replicas, three pgcheckd and HAProxy")
    c = cl.Cluster(replicas=2, say=lambda m: None)
    procs = []
    try:
        c.start()
        ports = [a.port for a in c.agents]
        state = mp.Array("d", NF * len(ports), lock=False)
        state[0 * NF + F_PRIMARY] = 1.0
        # warm-up, then the baseline
        for _ in range(300):
            for p in ports:
                for req in REQUESTS:
                    one_check(p, req, "agent")
                    one_check(p, req, "http")
        time.sleep(0.5)
        start_res = {a.name: resources(a.pid) for a in c.agents}

        ctx = mp.get_context("fork")
        out_q = ctx.Queue()
        t_start = time.monotonic() + 0.5
        t_end = t_start + args.seconds
        for k in range(args.workers):
            p = ctx.Process(target=worker, args=(k, args.workers, args.rate, t_start, t_end, ports, state, out_q),
                            daemon=True)
            p.start()
            procs.append(p)
        say(f"soak: {args.seconds:g} s at {args.rate:g} checks/s from {args.workers} worker processes; faults every "
            f"20 s cycle: freeze node2 5 s, stop node3 4 s, freeze node1 (primary) 3 s")
        time.sleep(max(0.0, t_start - time.monotonic()))
        inj = Injector(c, state, say)
        inj.run(t_end)
        # let everything heal, then wait for the workers' schedule to end
        results = []
        deadline = t_end + 30.0
        while len(results) < len(procs) and time.monotonic() < deadline:
            try:
                results.append(out_q.get(timeout=max(0.1, min(1.0, deadline - time.monotonic()))))
            except Exception:  # noqa: BLE001 - queue.Empty: keep waiting until the deadline
                pass
        for p in procs:
            p.join(5)
        if len(results) < len(procs):
            say(f"soak: only {len(results)} of {len(procs)} workers reported")
        cl.wait_until(lambda: all(a.ask("health") == "up 100%" for a in c.agents), 30, desc="all healthy at the end")
        time.sleep(0.5)
        end_res = {a.name: resources(a.pid) for a in c.agents}
        alive = {a.name: a.running() for a in c.agents}
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
        c.close()

    answered = sum(r["answered"] for r in results)
    errors = sum(r["errors"] for r in results)
    wrong = sum(r["wrong"] for r in results)
    skipped = sum(r["skipped"] for r in results)
    healthy_down = sum(r["healthy_down"] for r in results)
    lat = {}
    for p in PROTOCOLS:
        a = array.array("f")
        for r in results:
            a.frombytes(r["lat"][p])
        lat[p] = sorted(a)
    everything = sorted(lat["agent"] + lat["http"])

    def line(vals):
        return f"p50 {pct(vals, 50):.2f}  p99 {pct(vals, 99):.2f}  max {max(vals, default=float('nan')):.2f}"
    say("")
    say("=== pgcheckd soak ===")
    say(f"duration            {args.seconds:g} s, target {args.rate:g} checks/s ({args.workers} workers)")
    say(f"checks answered     {answered} ({answered / args.seconds:.1f}/s; agent {len(lat['agent'])}, "
        f"http {len(lat['http'])}); skipped by a late generator {skipped}")
    say(f"wrong answers       {wrong}")
    say(f"errors (no answer)  {errors}")
    say(f"latency ms          all   {line(everything)}")
    for p in PROTOCOLS:
        say(f"                    {p:5} {line(lat[p])}")
    say(f"down while healthy  {healthy_down} (fail-closed answers around faults; not wrong)")
    say("faults injected     " + ", ".join(f"{k} x{v}" for k, v in sorted(inj.counts.items())))
    for name in start_res:
        (r0, f0), (r1, f1) = start_res[name], end_res[name]
        say(f"{name:16}    RSS {r0} kB -> {r1} kB ({r1 - r0:+d} kB), fds {f0} -> {f1}"
            f"{'' if alive[name] else '  (NOT RUNNING)'}")
    for r in results:
        for w in r["wrong_samples"]:
            say(f"WRONG  t={w[0]}s {w[1]} {w[2]} over {w[3]}: {w[4]!r} ({w[5]})")
        for e in r["error_samples"]:
            say(f"ERROR  t={e[0]}s {e[1]} {e[2]} over {e[3]}: {e[4]}")
    ok = wrong == 0 and errors == 0 and len(results) == len(procs) and all(alive.values())
    say("soak: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
