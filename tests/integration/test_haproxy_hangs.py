"""A frozen or slow HAProxy runtime API never stalls the checks, a reload or the shutdown (issue 17,
items 7 and 8). The HAProxy here is a mock (fake_runtime_api.py): a real one cannot be frozen on demand."""

import os
import signal
import threading
import time

import pytest

import cluster as cl
import fake_runtime_api as fake

TIMEOUT_MS = 1000        # [haproxy] timeout_ms
DRAIN_MS = 500           # [agent] shutdown_drain_ms
CLIENT_TIMEOUT_MS = 500  # [agent] client_timeout_ms (the default)


@pytest.fixture(scope="module")
def pg():
    """One PostgreSQL primary, no pgcheckd, no HAProxy: each test starts the pgcheckd it needs."""
    c = cl.Cluster(replicas=0)
    c.start(pgcheckd=False, haproxy=False)
    yield c
    c.close()


class Checker:
    """Asks `primary\\n` in a loop, as HAProxy's checks would; records each answer and how long it took."""

    def __init__(self, agent, pause=0.02):
        self.agent = agent
        self.pause = pause
        self.results = []  # (start, seconds, answer or exception text)
        self.stop_at = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while self.stop_at is None or time.monotonic() < self.stop_at:
            t0 = time.monotonic()
            try:
                ans = self.agent.ask("primary", timeout=10)
            except OSError as e:
                ans = f"<{type(e).__name__}: {e}>"
            self.results.append((t0, time.monotonic() - t0, ans))
            time.sleep(self.pause)

    def start(self):
        self.thread.start()
        return self

    def stop(self, at=None):
        self.stop_at = at if at is not None else time.monotonic()
        self.thread.join(30)

    def unanswered(self, until=None):
        return [r for r in self.results if (until is None or r[0] < until) and not r[2].startswith("up")]

    def slowest(self, until=None):
        return max((r for r in self.results if until is None or r[0] < until), key=lambda r: r[1])


def start_agent(pg, conf, name):
    port = cl.free_ports(1)[0]
    agent = cl.Pgcheckd(pg, pg.pg[0], port, conf, name=name)
    agent.start()
    cl.wait_until(lambda: agent.ask("primary") == "up 100%", 15, desc=f"{name} to answer up")
    return agent


def test_frozen_runtime_api_socket_stalls_neither_checks_nor_reload_nor_shutdown(pg, report):
    frozen = fake.FrozenUnixApi(pg.tmp / "frozen-haproxy.sock")
    try:
        assert frozen.is_full()
        agent = start_agent(pg, {
            "agent": {"shutdown_drain_ms": DRAIN_MS},
            "haproxy": {"runtime_api": frozen.path, "template_backends": "be_replicas:pg",
                        "advertise_addr": "127.0.0.1", "advertise_pg_port": pg.pg[0].port,
                        "reconcile_ms": 200, "timeout_ms": TIMEOUT_MS}}, "frozen-api")
        checker = Checker(agent).start()
        time.sleep(1.5)  # the registrar is now stuck on the frozen socket (before: for good)
        agent.write_conf({"haproxy": {"template_backends": "be_primary:pg"}})  # a registration change
        agent.sighup()
        time.sleep(2.0)
        t_term = time.monotonic()
        agent.sigterm()
        try:
            rc = agent.wait_exit(timeout=DRAIN_MS / 1000 + TIMEOUT_MS / 1000 + 10)
        except Exception:  # noqa: BLE001
            rc = None
        took = time.monotonic() - t_term
        checker.stop(at=t_term + DRAIN_MS / 2000)
        if rc is None:
            agent.kill()
        until = t_term + DRAIN_MS / 2000
        bad = checker.unanswered(until=until)
        counted = [r for r in checker.results if r[0] < until]
        report(f"{len(counted)} checks, {len(bad)} unanswered, slowest {checker.slowest(until)[1]:.3f}s; "
               f"exit {took:.2f}s after SIGTERM (drain {DRAIN_MS} ms + timeout {TIMEOUT_MS} ms)")
        assert not bad, bad[:5]
        assert rc == 0, f"pgcheckd had not exited {took:.1f}s after SIGTERM"
        # a generous bound: the drain, one runtime-API deadline, and a second for a loaded machine
        assert took < (DRAIN_MS + TIMEOUT_MS) / 1000 + 1.0, took
    finally:
        frozen.close()


def test_reloads_changing_registration_and_scaleout_never_delay_a_check(pg, report):
    """A slow HAProxy (every answer 300 ms late) and a running scale-out command: reload after reload
    changes the registration and the scale-out settings, and no check waits for any of it."""
    api = fake.SlowApi(delay=0.3)
    pids = pg.tmp / "reload-loop-pids"
    try:
        agent = start_agent(pg, {
            "haproxy": {"runtime_api": api.addr, "template_backends": "be_replicas:pg",
                        "advertise_addr": "127.0.0.1", "advertise_pg_port": pg.pg[0].port,
                        "reconcile_ms": 200, "timeout_ms": TIMEOUT_MS},
            "scaleout": {"backend": "be_replicas", "interval_ms": 100, "window_s": 1, "high_sessions": 2,
                         "cooldown_s": 0, "max_pool": 5,
                         "up_command": f"echo $$ >> {pids}; exec sleep 20"}}, "reload-loop")
        cl.wait_until(lambda: pids.exists(), 15, desc="the scale-out command to start")
        checker = Checker(agent).start()
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 6:
            n += 1
            agent.write_conf({"haproxy": {"template_backends": "be_primary:pg" if n % 2 else "be_replicas:pg",
                                          "advertise_agent_port": 40000 + n},
                              "scaleout": {"backend": "be_other" if n % 2 else "be_replicas"}})
            agent.sighup()
            time.sleep(0.4)
        checker.stop()
        assert agent.running()
        slow = [r for r in checker.results if r[1] >= CLIENT_TIMEOUT_MS / 1000]
        report(f"{n} reloads, {len(checker.results)} checks, slowest {checker.slowest()[1]:.3f}s "
               f"(client_timeout_ms {CLIENT_TIMEOUT_MS})")
        assert not checker.unanswered(), checker.unanswered()[:5]
        assert not slow, slow[:5]
        assert agent.stop(timeout=10) == 0
    finally:
        api.close()
        for line in (pids.read_text().split() if pids.exists() else []):
            try:
                os.kill(int(line), signal.SIGKILL)
            except OSError:
                pass


class StillConnectedApi(fake.SlowApi):
    """A runtime API that refuses the first `refusals` 'del server' commands as HAProxy 3.0 does while
    the server's connections are still being released after 'shutdown sessions server'."""

    def __init__(self, refusals):
        super().__init__(backends=("be_dyn",))
        self.refusals = refusals

    def answer(self, line):
        if "del server" in line:
            with self.lock:
                refuse = self.refusals > 0
                self.refusals -= 1 if refuse else 0
            if refuse:
                return "Server still has connections attached to it, cannot remove it.\n\n"
        return super().answer(line)


def test_withdrawal_deletes_a_dynamic_server_once_haproxy_has_released_its_connections(pg, report):
    refusals = 2
    api = StillConnectedApi(refusals)
    try:
        agent = start_agent(pg, {
            "haproxy": {"runtime_api": api.addr, "dynamic_backends": "be_dyn:replica",
                        "advertise_addr": "127.0.0.1", "advertise_pg_port": pg.pg[0].port,
                        "reconcile_ms": 200, "timeout_ms": TIMEOUT_MS},
            "agent": {"shutdown_drain_ms": 0}}, "dyn-withdraw")
        cl.wait_until(lambda: any(c.startswith("add server be_dyn/") for _, c in api.sent()), 15,
                      desc="the node to add itself")
        assert agent.stop() == 0
        dels = [c for _, c in api.sent() if "del server" in c]
        report(f"'del server' sent {len(dels)} times; log: "
               f"{[ln for ln in agent.log().splitlines() if 'withdr' in ln]}")
        assert len(dels) == refusals + 1, dels
        assert "withdrew from be_dyn/" in agent.log(), agent.log()
        assert "cannot withdraw" not in agent.log()
    finally:
        api.close()
