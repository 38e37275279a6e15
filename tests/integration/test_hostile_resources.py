"""Hostile clients against the running pgcheckd, with its resources watched: after each attack the agent's
open file descriptors are exactly back at their baseline and its RSS within RSS_SLACK_KB of it, and
well-behaved checks were answered promptly throughout.

The request-level behaviour of most of these clients (one slow client, one megabyte line, one piece of
garbage, a small max_clients) is pinned in test_agent_protocol.py; here the same attacks come in numbers
and the question is what they leave behind. One pgcheckd (a primary, no HAProxy) serves the whole module
with a larger cap, a longer wait for silent clients and a longer client deadline, so that idle clients
are really held:

    max_clients = 64, request_wait_ms = 2000, client_timeout_ms = 2500, plus an HTTP-only port.

The last test lowers the running agent's descriptor limit (prlimit) to run it out of descriptors while
clients keep connecting.

The baseline is taken after a warm-up that reaches the allocator's working set once (a burst of checks
in every protocol and the cap filled once): what is measured afterwards is growth that repeats, not the
first touch of a page.
"""

import json
import os
import random
import re
import resource
import select
import socket
import struct
import subprocess
import threading
import time

import pytest

import cluster as cl

MAX_CLIENTS = 64
REQUEST_WAIT_S = 2.0
CLIENT_TIMEOUT_S = 2.5
PROMPT = 0.5          # seconds: "answered promptly" (HAProxy's timeout check in conf/haproxy.cfg is 500ms)
RSS_SLACK_KB = 512
SANITIZED = os.environ.get("PGCHECKD_SANITIZED") == "1"
AGENT_LINE_RE = re.compile(rb"^(up \d{1,3}%|down #[^\r\n]+)\n$")


# ---------------------------------------------------------------------------------------------------
# what the agent holds


def resources(pid):
    """(VmRSS in kB, number of open file descriptors) of a running process."""
    rss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid):
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return out


class Hostile:
    """The module's pgcheckd, its ports and its resource baseline."""

    def __init__(self, c):
        self.c = c
        self.agent = c.agents[0]
        self.port = self.agent.port
        self.http_port = int(self.agent.conf["agent"]["http_listen"].rsplit(":", 1)[1])
        self.base_rss = self.base_fds = None
        self.base_fd_list = []

    @property
    def pid(self):
        return self.agent.pid

    def status(self):
        """/status over the HTTP-only port (its own listener, so it answers while the agent port is full)."""
        raw = http_get(self.http_port, "/status", timeout=2)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), f"/status answered {raw[:200]!r}"
        return json.loads(body)

    def take_baseline(self):
        self.base_rss, self.base_fds = resources(self.pid)
        self.base_fd_list = fd_targets(self.pid)

    def assert_back_to_baseline(self, what, report, timeout=CLIENT_TIMEOUT_S + 2.0):
        """fds exactly back (waiting up to timeout for deadlines to close what they must), RSS within slack."""
        assert self.agent.running(), f"pgcheckd died after {what}:\n{self.agent.log(40)}"
        deadline = time.monotonic() + timeout
        rss, fds = resources(self.pid)
        while fds != self.base_fds and time.monotonic() < deadline:
            time.sleep(0.05)
            rss, fds = resources(self.pid)
        t_settle = timeout - max(0.0, deadline - time.monotonic())
        report(f"after {what}: fds {fds} (baseline {self.base_fds}, settled in {t_settle:.2f}s), "
               f"RSS {rss} kB (baseline {self.base_rss} kB, {rss - self.base_rss:+d} kB)")
        assert fds == self.base_fds, \
            f"after {what}, pgcheckd holds {fds} fds, baseline {self.base_fds} (waited {timeout:.1f}s): " \
            f"now {fd_targets(self.pid)}, baseline {self.base_fd_list}"
        # AddressSanitizer holds freed memory in its quarantine (256 MB): RSS says nothing there, and
        # LeakSanitizer checks at exit instead (the cluster stops pgcheckd with SIGTERM)
        assert SANITIZED or rss <= self.base_rss + RSS_SLACK_KB, \
            f"after {what}, pgcheckd's RSS is {rss} kB, baseline {self.base_rss} kB (+{rss - self.base_rss} kB " \
            f"> {RSS_SLACK_KB} kB slack)"
        assert_prompt_check(self, f"after {what}")


def probe_while(h, work, during, interval):
    """Run work() in a thread; meanwhile a check every interval must be answered promptly. Returns the
    latencies of those checks."""
    th = threading.Thread(target=work, daemon=True)
    th.start()
    prompt = []
    while th.is_alive():
        prompt.append(assert_prompt_check(h, during))
        th.join(interval)
    return prompt


def timed_check(h, req=b"primary\n", port=None):
    t = time.monotonic()
    try:
        reply = cl.agent_request(port or h.port, req, timeout=2.0)
    except OSError as e:
        reply = f"<{e!r}>".encode()
    return reply, time.monotonic() - t


def assert_prompt_check(h, during):
    reply, took = timed_check(h)
    assert reply == b"up 100%\n" and took < PROMPT, \
        f"a normal 'primary' check {during} got {reply!r} after {took * 1000:.0f} ms"
    return took


def http_get(port, path, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return read_until_closed(s, timeout)


def read_until_closed(s, timeout):
    """Everything the peer sends until it closes (EOF or reset) or timeout passes."""
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return buf
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            chunk = s.recv(65536)
        except OSError:
            return buf
        if not chunk:
            return buf
        buf += chunk


def connect_many(port, n):
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def rst_close(s):
    """Close with SO_LINGER 0: the peer gets a reset, not a FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def wait_fds(h, n, timeout=3.0):
    """Wait until pgcheckd holds exactly n fds; return the last count."""
    deadline = time.monotonic() + timeout
    fds = resources(h.pid)[1]
    while fds != n and time.monotonic() < deadline:
        time.sleep(0.02)
        fds = resources(h.pid)[1]
    return fds


def in_threads(n, fn, timeout=60):
    """Run fn(k) in n threads; return their results in order (an exception is returned as itself)."""
    out = [None] * n

    def run(k):
        try:
            out[k] = fn(k)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            out[k] = e
    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"client threads still running after {timeout}s"
    errors = [r for r in out if isinstance(r, BaseException)]
    assert not errors, f"client threads failed: {errors[:3]}"
    return out


def burst(h, total, nthreads, requests):
    """total checks from nthreads threads, cycling through requests = [(port, bytes, accept(reply))].
    Returns (latencies, wrong [(request, reply)])."""
    per = total // nthreads

    def work(k):
        lats, wrong = [], []
        for j in range(per):
            port, req, ok = requests[(k + j) % len(requests)]
            t = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(req)
                    reply = read_until_closed(s, 2.0)
            except OSError as e:
                reply = f"<{e!r}>".encode()
            lats.append(time.monotonic() - t)
            if not ok(reply):
                wrong.append((req, reply[:120]))
        return lats, wrong
    res = in_threads(nthreads, work, timeout=120)
    return [x for r in res for x in r[0]], [x for r in res for x in r[1]]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


# ---------------------------------------------------------------------------------------------------
# the module's pgcheckd


@pytest.fixture(scope="module")
def hostile():
    if not os.access(cl.PGCHECKD_BIN, os.X_OK):
        pytest.fail(f"pgcheckd binary not found: {cl.PGCHECKD_BIN} (run `make`)", pytrace=False)
    http_port = cl.free_ports(1)[0]
    c = cl.Cluster(replicas=0, pgcheckd_common={"agent": {
        "max_clients": MAX_CLIENTS, "request_wait_ms": int(REQUEST_WAIT_S * 1000),
        "client_timeout_ms": int(CLIENT_TIMEOUT_S * 1000), "http_listen": f"127.0.0.1:{http_port}"}})
    c.start(haproxy=False)
    try:
        h = Hostile(c)
        assert h.agent.ask("primary") == "up 100%"
        # warm-up: every protocol in a burst, and the cap filled once
        ok = lambda reply: True  # noqa: E731
        burst(h, 1600, 16, [(h.port, b"primary\n", ok), (h.port, b"GET /primary HTTP/1.1\r\n\r\n", ok),
                            (h.http_port, b"GET /status HTTP/1.1\r\n\r\n", ok),
                            (h.http_port, b"GET /metrics HTTP/1.1\r\n\r\n", ok)])
        socks = connect_many(h.port, MAX_CLIENTS + 8)
        for s in socks:
            s.sendall(b"primary\n")
        for s in socks:
            read_until_closed(s, 3.0)
        close_all(socks)
        time.sleep(0.3)
        h.take_baseline()
        yield h
    finally:
        c.close()


@pytest.fixture
def h(hostile, report):
    """The module's pgcheckd; each test starts from its baseline (checked, so one test's leftovers are
    not blamed on the next)."""
    rss, fds = resources(hostile.pid)
    if fds != hostile.base_fds:
        hostile.assert_back_to_baseline("the previous test", report)
    return hostile


# ---------------------------------------------------------------------------------------------------
# idle connections and the cap


def test_idle_connections_below_max_clients_are_held_while_other_checks_are_answered_promptly(h, report):
    """max_clients - 2 connections that send nothing are all held (one fd each) until request_wait_ms,
    then get the default request's answer; meanwhile agent and HTTP checks are answered at once."""
    n = MAX_CLIENTS - 2
    socks = connect_many(h.port, n)
    try:
        held_fds = wait_fds(h, h.base_fds + n)
        assert held_fds == h.base_fds + n, \
            f"{n} idle clients: pgcheckd holds {held_fds} fds, want baseline {h.base_fds} + {n}"
        lats = []
        for i in range(20):
            reply, took = timed_check(h, b"primary\n" if i % 2 == 0 else b"GET /primary HTTP/1.1\r\n\r\n")
            lats.append(took)
            assert reply == b"up 100%\n" or reply.startswith(b"HTTP/1.1 200 "), \
                f"a check while {n} idle clients were held got {reply[:80]!r}"
        assert max(lats) < PROMPT, f"checks while {n} idle clients were held took up to {max(lats) * 1000:.0f} ms"
        t0 = time.monotonic()
        replies = [read_until_closed(s, REQUEST_WAIT_S + 2.0) for s in socks]
        waited = time.monotonic() - t0
    finally:
        close_all(socks)
    report(f"{n} idle clients held; 20 checks meanwhile, slowest {max(lats) * 1000:.1f} ms; idle clients "
           f"answered {waited:.2f}s later")
    bad = [r for r in replies if r != b"down #is-primary\n"]
    assert not bad, f"idle clients (default_request = replica on a primary) got {bad[:5]} ({len(bad)} of {n})"
    h.assert_back_to_baseline(f"{n} idle clients", report)


def listen_queue(port):
    """Connections waiting in the kernel's accept queue of a listening port (ss: Recv-Q of LISTEN)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.strip())


def test_connections_past_max_clients_take_the_oldest_idle_slot_and_never_queue(h, report):
    """With the cap full of idle clients, 200 more connections: each takes the slot of the oldest client
    that has not finished its request (that one is closed without an answer), or is closed at once when
    none is left to take; the agent's fds never exceed baseline + max_clients (+1 being accepted), nothing
    waits in the accept queue, and a check while the cap is full is answered, not refused."""
    held = connect_many(h.port, MAX_CLIENTS)
    extra = []
    peak_fds = 0
    try:
        assert wait_fds(h, h.base_fds + MAX_CLIENTS) == h.base_fds + MAX_CLIENTS, "the cap did not fill"
        st0 = h.status()
        t0 = time.monotonic()
        extra = connect_many(h.port, 200)
        closed_at, data = {}, {}
        while len(closed_at) < len(held) and time.monotonic() - t0 < 2.0:
            peak_fds = max(peak_fds, resources(h.pid)[1])
            open_ = [s for s in held if s.fileno() not in closed_at]
            r, _, _ = select.select(open_, [], [], 0.05)
            for s in r:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                data[s.fileno()] = data.get(s.fileno(), b"") + chunk
                if not chunk:
                    closed_at[s.fileno()] = time.monotonic() - t0
        queue = listen_queue(h.port)
        peak_fds = max(peak_fds, resources(h.pid)[1])
        st = h.status()
        evicted, refused = st["evicted"] - st0["evicted"], st["refused"] - st0["refused"]
        # while the cap is full of idle clients, a check still gets its answer
        reply, took = timed_check(h)
        extra_replies = [read_until_closed(s, REQUEST_WAIT_S + 2.0) for s in extra]
    finally:
        close_all(extra)
        close_all(held)
    last = max(closed_at.values(), default=0.0)
    answered = [r for r in extra_replies if r]
    report(f"cap {MAX_CLIENTS} full, 200 more: the {len(closed_at)} held closed (last {last * 1000:.0f} ms after "
           f"the first connect), evicted +{evicted}, refused +{refused}, peak fds {peak_fds} (baseline "
           f"{h.base_fds}), accept queue {queue}; a check while full: {reply!r} in {took * 1000:.0f} ms; "
           f"{len(answered)} of the 200 answered")
    assert len(closed_at) == MAX_CLIENTS and last < PROMPT + 0.5, \
        f"the oldest idle clients were not closed: {len(closed_at)} of {MAX_CLIENTS} within 2 s"
    assert not any(data.values()), f"evicted connections got data: {[d for d in data.values() if d][:3]}"
    assert peak_fds <= h.base_fds + MAX_CLIENTS + 1, \
        f"pgcheckd held {peak_fds} fds with max_clients = {MAX_CLIENTS} (baseline {h.base_fds})"
    assert queue == 0, f"{queue} connections waiting in pgcheckd's accept queue"
    assert evicted + refused >= 200, f"evicted {evicted} + refused {refused} for 200 over the cap"
    assert reply == b"up 100%\n" and took < PROMPT, f"a check while the cap was full: {reply!r} after {took * 1000:.0f} ms"
    # whoever kept a slot is answered as usual (the default request, for a client that sent nothing)
    assert answered and all(r == b"down #is-primary\n" for r in answered), sorted(set(extra_replies))
    assert len(answered) <= MAX_CLIENTS
    h.assert_back_to_baseline("the cap full and 200 over it", report)


# ---------------------------------------------------------------------------------------------------
# slow clients


@pytest.mark.parametrize("which", ["agent-port", "http-port"])
def test_http_request_at_one_byte_per_second_is_cut_off_at_client_timeout(h, report, which):
    """An HTTP request line at once, then its headers one byte a second: the connection is answered 400
    (or closed) by client_timeout_ms, not held for the 19 s the headers would take."""
    port = h.port if which == "agent-port" else h.http_port
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    got, closed_at = b"", None
    t0 = time.monotonic()
    try:
        s.sendall(b"GET /primary HTTP/1.1\r\n")
        for byte in b"Host: localhost\r\n\r\n":
            r, _, _ = select.select([s], [], [], 1.0)
            if r:
                got += read_until_closed(s, 1.0)
                closed_at = time.monotonic() - t0
                break
            try:
                s.send(bytes([byte]))
            except OSError:
                closed_at = time.monotonic() - t0
                break
            assert_prompt_check(h, "while a client sends one byte a second")
            if time.monotonic() - t0 > CLIENT_TIMEOUT_S + 3:
                break
    finally:
        s.close()
    report(f"{which}: one byte a second, closed after {closed_at if closed_at is None else round(closed_at, 2)}s "
           f"with {got[:40]!r}")
    assert closed_at is not None and closed_at <= CLIENT_TIMEOUT_S + 1.0, \
        f"a one-byte-a-second HTTP client was held {closed_at if closed_at is not None else 'more than 5'} s " \
        f"(client_timeout_ms = {CLIENT_TIMEOUT_S * 1000:.0f})"
    assert got == b"" or got.startswith(b"HTTP/1.1 400 "), f"the cut-off client got {got[:200]!r}"
    h.assert_back_to_baseline(f"a one-byte-a-second HTTP client ({which})", report)


def test_agent_line_at_one_byte_per_second_ends_after_request_idle_and_is_answered(h, report):
    """'primary' one byte a second: the request ends request_idle_ms after its first byte ('p'), which is
    no request word: down #bad-request, then the connection closes - well before client_timeout_ms."""
    s = socket.create_connection(("127.0.0.1", h.port), timeout=2)
    t0 = time.monotonic()
    try:
        s.sendall(b"p")
        got = read_until_closed(s, CLIENT_TIMEOUT_S + 1.0)
        took = time.monotonic() - t0
    finally:
        s.close()
    report(f"agent line one byte a second: {got!r} after {took * 1000:.0f} ms")
    assert got == b"down #bad-request\n" and took < 1.0, f"'p' then silence: {got!r} after {took:.2f}s"
    h.assert_back_to_baseline("a one-byte-a-second agent line", report)


# ---------------------------------------------------------------------------------------------------
# big and bad input


def test_megabyte_requests_from_several_clients_are_refused_and_leave_nothing_behind(h, report):
    """Eight clients at once each push 4 MB (agent lines and HTTP headers, on both ports): each gets a
    bad-request line, a 431, or a closed connection within a second, and checks stay prompt."""
    big = 4 << 20
    payloads = [(h.port, b"a" * big), (h.port, b"GET /primary HTTP/1.1\r\nX-Big: " + b"b" * big),
                (h.http_port, b"GET /primary HTTP/1.1\r\nX-Big: " + b"c" * big), (h.port, os.urandom(big))] * 2

    def client(k):
        port, payload = payloads[k]
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.setblocking(False)
        t0, off, got, done = time.monotonic(), 0, b"", False
        try:
            while not done and time.monotonic() - t0 < 5.0:
                want_w = [s] if off < len(payload) else []
                r, w, _ = select.select([s], want_w, [], 0.05)
                if r:
                    try:
                        chunk = s.recv(65536)
                    except OSError:
                        chunk = b""
                    got += chunk
                    done = not chunk
                if w and not done:
                    try:
                        off += s.send(payload[off:off + 262144])
                    except BlockingIOError:
                        pass
                    except OSError:
                        done = True  # reset: the agent closed with our bytes unread
            return time.monotonic() - t0, off, got, done
        finally:
            s.close()

    results = []
    prompt = probe_while(h, lambda: results.extend(in_threads(len(payloads), client, timeout=30)),
                         "while 8 clients pushed 4 MB each", 0.1)
    report(f"8 x 4 MB: closed after {max(r[0] for r in results) * 1000:.0f} ms at most, having sent "
           f"{max(r[1] for r in results) >> 10} kB at most; {len(prompt)} checks meanwhile, slowest "
           f"{max(prompt, default=0) * 1000:.1f} ms")
    for (port, payload), (took, sent, got, done) in zip(payloads, results):
        assert done and took < 1.5, f"a 4 MB request ({payload[:20]!r}) was not closed within 1.5 s ({took:.2f}s)"
        assert got in (b"", b"down #bad-request\n") or got.startswith(b"HTTP/1.1 431 ") or \
            got.startswith(b"HTTP/1.1 400 "), f"a 4 MB request ({payload[:20]!r}) got {got[:200]!r}"
    h.assert_back_to_baseline("8 clients sending 4 MB each", report)


def acceptable_garbage_reply(data, reply):
    if reply in (b"", b"down #bad-request\n"):
        return True
    if not data.strip(b" \t,\r\n"):
        # nothing but separators is an empty request: the default one (replica, down on a primary)
        return reply == b"down #is-primary\n"
    m = re.match(rb"^HTTP/1\.[01] (\d{3}) ", reply)
    return bool(m) and m.group(1) in (b"400", b"404", b"405", b"431")


def test_binary_garbage_from_many_clients_is_refused_and_leaves_nothing_behind(h, report):
    """600 connections of random bytes (1 byte to 6 kB, half ending with a half-close, some starting like
    HTTP): every reply is a bad request (agent line or HTTP 4xx) or nothing, never 'up' (a line of only
    separators is an empty request and gets the default request's answer)."""
    def client(k):
        rnd = random.Random(1000 + k)
        out = []
        for j in range(75):
            n = rnd.choice([1, 2, 7, 100, 255, 256, 257, 300, 4095, 4096, 4097, 6000])
            data = bytes(rnd.getrandbits(8) for _ in range(n))
            if j % 5 == 0:
                data = rnd.choice([b"GET /", b"HEAD /", b"GET / HTTP/1.1\r\n", b"primary "]) + data
            data = data.replace(b"\n", b"\x00") + (b"\n" if j % 3 == 0 else b"")
            port = h.http_port if j % 7 == 0 else h.port
            try:
                # HTTP ends only at its empty line, EOF or the deadline (the slow clients' test): half-close it
                httpish = port == h.http_port or data[:1].isupper()
                reply = cl.agent_request(port, data, timeout=CLIENT_TIMEOUT_S + 1.0, shut_wr=httpish or j % 2 == 0)
                if reply.startswith(b"HTTP/"):
                    reply = reply.split(b"\r\n", 1)[0] + b" "
            except OSError as e:
                reply = b"" if isinstance(e, ConnectionResetError) else f"<{e!r}>".encode()
            out.append((data, reply))
        return out
    results = [x for r in in_threads(8, client, timeout=120) for x in r]
    bad = [(d[:40], r) for d, r in results if not acceptable_garbage_reply(d, r)]
    kinds = {}
    for _, r in results:
        kinds[r[:24]] = kinds.get(r[:24], 0) + 1
    report(f"{len(results)} garbage requests: replies {kinds}")
    assert not bad, f"{len(bad)} garbage requests got something other than a bad request: {bad[:5]}"
    h.assert_back_to_baseline(f"{len(results)} garbage requests", report)


# ---------------------------------------------------------------------------------------------------
# resets, half-closes, bursts


def test_connections_reset_mid_request_leave_nothing_behind(h, report):
    """800 connections reset (SO_LINGER 0) at every stage: right after connect, in the middle of an agent
    line or of HTTP headers, and after a complete request before reading the answer."""
    stages = [b"", b"prim", b"GET /primary HTTP/1.1\r\nHo", b"primary\n", b"GET /status HTTP/1.1\r\n\r\n",
              b"GET /metrics HTTP/1.1\r\n\r\n", b"x" * 300, b"GET /" + b"y" * 5000]

    def client(k):
        for j in range(100):
            stage = stages[(k + j) % len(stages)]
            port = h.http_port if (j % 4 == 0 and stage.startswith(b"GET")) else h.port
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            try:
                if stage:
                    s.sendall(stage)
                if j % 3 == 0:
                    time.sleep(0.002)  # let the agent read some of it first
            except OSError:
                pass
            rst_close(s)
        return True
    t0 = time.monotonic()
    prompt = probe_while(h, lambda: in_threads(8, client, timeout=60), "while clients reset their connections", 0.05)
    report(f"800 resets in {time.monotonic() - t0:.2f}s; {len(prompt)} checks meanwhile, slowest "
           f"{max(prompt, default=0) * 1000:.1f} ms")
    h.assert_back_to_baseline("800 connections reset mid-request", report)


def test_burst_of_thousands_of_checks_from_threads_is_answered_correctly(h, report):
    """6400 checks from 16 threads, agent lines and HTTP on both ports: every one answered right, none
    refused (16 at a time is under the cap)."""
    refused0 = h.status()["refused"]
    reqs = [(h.port, b"primary\n", lambda r: r == b"up 100%\n"),
            (h.port, b"replica\n", lambda r: r == b"down #is-primary\n"),
            (h.port, b"GET /primary HTTP/1.1\r\n\r\n", lambda r: r.startswith(b"HTTP/1.1 200 ")),
            (h.http_port, b"GET /replica HTTP/1.1\r\n\r\n", lambda r: r.startswith(b"HTTP/1.1 503 ")),
            (h.port, b"health", lambda r: r == b"100% up\n")]  # no newline: weight first
    t0 = time.monotonic()
    lats, wrong = burst(h, 6400, 16, reqs)
    took = time.monotonic() - t0
    refused = h.status()["refused"] - refused0
    report(f"{len(lats)} checks from 16 threads in {took:.2f}s ({len(lats) / took:.0f}/s): latency p50 "
           f"{pct(lats, 50) * 1000:.2f} ms, p99 {pct(lats, 99) * 1000:.2f} ms, max {max(lats) * 1000:.1f} ms; "
           f"refused {refused}")
    assert not wrong, f"{len(wrong)} of {len(lats)} checks answered wrong: {wrong[:5]}"
    assert refused == 0, f"{refused} checks refused with 16 clients at a time and max_clients = {MAX_CLIENTS}"
    h.assert_back_to_baseline(f"a burst of {len(lats)} checks", report)


def test_half_closed_sockets_are_answered_at_eof_and_released_without_the_client_closing(h, report):
    """A half-close ends the request at once (nothing sent: the default request, without waiting
    request_wait_ms); and the agent releases its side of 200 answered connections whose clients neither
    read nor close, and of 40 HTTP /metrics clients with a tiny receive buffer that never read."""
    # EOF with nothing sent, and EOF after a word without newline
    lat = []
    for req, want in ((b"", b"down #is-primary\n"), (b"primary", b"100% up\n")):
        for _ in range(25):
            t = time.monotonic()
            reply = cl.agent_request(h.port, req, timeout=CLIENT_TIMEOUT_S + 1, shut_wr=True)
            lat.append(time.monotonic() - t)
            assert reply == want, f"{req!r} then a half-close: {reply!r}"
    assert max(lat) < PROMPT, f"a half-closed request was answered after {max(lat) * 1000:.0f} ms"

    # answered but never read, never closed by the client
    silent_all = []
    try:
        for _group in range(4):  # 50 at a time, under the cap: the cap is never the reason for a close
            socks = connect_many(h.port, 50)
            silent_all.extend(socks)
            for s in socks:
                s.sendall(b"primary\n")
            time.sleep(0.05)
        fds = wait_fds(h, h.base_fds, timeout=CLIENT_TIMEOUT_S + 1.0)
        assert fds == h.base_fds, \
            f"pgcheckd holds {fds} fds (baseline {h.base_fds}) for 200 answered clients that have not closed"
        replies = [read_until_closed(s, 1.0) for s in silent_all]
        assert all(r == b"up 100%\n" for r in replies), f"unread answers: {sorted(set(replies))[:5]}"
    finally:
        close_all(silent_all)

    # HTTP clients that cannot take the whole /metrics answer and never read
    slow = []
    try:
        for _ in range(40):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.connect(("127.0.0.1", h.http_port))
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            slow.append(s)
        t0 = time.monotonic()
        fds = wait_fds(h, h.base_fds, timeout=CLIENT_TIMEOUT_S + 1.5)
        released = time.monotonic() - t0
        assert_prompt_check(h, "while 40 clients did not read their /metrics answers")
    finally:
        close_all(slow)
    report(f"half-closed requests answered in {max(lat) * 1000:.1f} ms at most; 40 non-reading /metrics "
           f"clients released after {released:.2f}s")
    assert fds == h.base_fds, \
        f"pgcheckd holds {fds} fds (baseline {h.base_fds}) for /metrics clients that never read, " \
        f"{CLIENT_TIMEOUT_S + 1.5}s after they asked (client_timeout_ms = {CLIENT_TIMEOUT_S * 1000:.0f})"
    h.assert_back_to_baseline("half-closed and non-reading clients", report)


# ---------------------------------------------------------------------------------------------------
# out of descriptors


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_accepting_pauses_without_spinning_or_flooding_the_log(h, report):
    """The agent's descriptor limit lowered to baseline + 16 and 60 idle clients: accept() fails with
    EMFILE, and pgcheckd pauses accepting (0.1 s) instead of retrying at once - over 1.5 s it uses well under
    a CPU and logs at most one 'cannot accept' warning per pause; once the clients are gone its fds are
    back at baseline and checks are answered again."""
    old = resource.prlimit(h.pid, resource.RLIMIT_NOFILE)
    log0 = len(h.agent.log())
    socks = []
    try:
        resource.prlimit(h.pid, resource.RLIMIT_NOFILE, (h.base_fds + 16, old[1]))
        socks = connect_many(h.port, 60)
        cl.wait_until(lambda: "cannot accept" in h.agent.log()[log0:], 3, desc="pgcheckd to run out of descriptors")
        cpu0, t0 = cpu_seconds(h.pid), time.monotonic()
        log_len = len(h.agent.log())
        time.sleep(1.5)
        cpu = cpu_seconds(h.pid) - cpu0
        elapsed = time.monotonic() - t0
        warnings = h.agent.log()[log_len:].count("cannot accept")
        fds = resources(h.pid)[1]
    finally:
        close_all(socks)
        resource.prlimit(h.pid, resource.RLIMIT_NOFILE, old)
    report(f"out of descriptors ({fds} open, limit {h.base_fds + 16}): {cpu:.2f}s CPU and {warnings} 'cannot accept' "
           f"warnings in {elapsed:.2f}s")
    assert cpu <= 0.3 * elapsed, f"pgcheckd used {cpu:.2f}s of CPU in {elapsed:.2f}s while out of descriptors " \
                                 f"(accept retried without pausing)"
    assert warnings <= elapsed / 0.1 + 5, \
        f"{warnings} 'cannot accept' warnings in {elapsed:.2f}s (one per 0.1 s pause would be {elapsed / 0.1:.0f})"
    h.assert_back_to_baseline("running out of descriptors", report, timeout=REQUEST_WAIT_S * 3 + 2)
