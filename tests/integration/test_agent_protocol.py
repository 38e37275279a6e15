"""The agent line protocol on a real pgcheckd: requests, aliases, and clients that misbehave."""

import re
import select
import socket
import threading
import time

import pytest

import cluster as cl

REPLY_RE = re.compile(rb"^(up \d{1,3}%|down #[^\r\n]+)\n$")
PROMPT = 0.5  # seconds: what "answers promptly" means here (HAProxy's timeout check is 500ms)


def _normal_check(c):
    """A well-behaved check of the primary's agent: (answer, seconds)."""
    t = time.monotonic()
    answer = c.agents[0].ask("primary", timeout=2)
    return answer, time.monotonic() - t


def _assert_prompt_normal_check(c, during):
    answer, took = _normal_check(c)
    assert answer == "up 100%" and took < PROMPT, \
        f"a normal check during {during} got {answer!r} after {took * 1000:.0f} ms"


@pytest.mark.parametrize("req,node,want", [
    ("primary", 0, "up 100%"), ("master", 0, "up 100%"), ("leader", 0, "up 100%"),
    ("read-write", 0, "up 100%"), ("rw", 0, "up 100%"), ("PRIMARY", 0, "up 100%"),
    ("replica", 0, "down #is-primary"), ("standby", 0, "down #is-primary"), ("ro", 0, "down #is-primary"),
    ("health", 0, "up 100%"), ("any", 0, "up 100%"),
    ("primary", 1, "down #is-replica"), ("rw", 1, "down #is-replica"),
    ("replica", 1, "up"), ("standby", 1, "up"), ("ro", 1, "up"), ("read-only", 1, "up"),
    ("replica lag=16MB lag_s=5", 1, "up"), ("replica lag=16MB", 1, "up"), ("health", 2, "up 100%"),
    ("nonsense", 0, "down #bad-request"), ("replica lag=banana", 1, "down #bad-request"),
])
def test_request_words_and_aliases(shared_cluster, req, node, want):
    reply = shared_cluster.agents[node].request(req + "\n")
    assert REPLY_RE.match(reply), f"{req!r} to node{node + 1}: reply {reply!r} is not one complete line"
    text = reply.decode().strip()
    if want == "up":
        assert cl.parse_pct(text) is not None and cl.parse_pct(text) > 0, f"{req!r} to node{node + 1}: {text!r}"
    else:
        assert text == want, f"{req!r} to node{node + 1}: {text!r}, want {want!r}"


def test_request_without_newline_or_ending_at_eof(shared_cluster):
    a = shared_cluster.agents[0]
    # without its newline a request is still answered, weight first (no "^up" check takes it)
    assert a.request(b"primary") == b"100% up\n"                 # ends after ~20 ms of silence
    assert a.request(b"primary", shut_wr=True) == b"100% up\n"   # ends at EOF
    assert a.request(b"primary\r\n") == b"up 100%\n"


def test_silent_client_gets_default_request_after_idle(shared_cluster, report):
    c = shared_cluster
    t = time.monotonic()
    reply = c.agents[0].request(b"")
    took = time.monotonic() - t
    assert reply == b"down #is-primary\n", f"silent client on the primary (default_request = replica): {reply!r}"
    assert 0.150 <= took < PROMPT, f"silent client answered after {took * 1000:.1f} ms; want about 200 ms " \
        "(request_wait_ms)"
    reply2 = c.agents[1].request(b"")
    assert cl.parse_pct(reply2.decode()), f"silent client on a replica: {reply2!r}"
    report(f"silent client answered after {took * 1000:.1f} ms")


def test_slow_client_is_cut_off_within_client_timeout(shared_cluster, report):
    """1 byte every 100 ms: answered (as whatever arrived) or closed within client_timeout (500 ms)."""
    c = shared_cluster
    s = socket.create_connection(("127.0.0.1", c.agents[0].port), timeout=3)
    t0 = time.monotonic()
    got, closed_at = b"", None
    try:
        for byte in b"primary\n":
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed_at = time.monotonic() - t0
                break
            r, _, _ = select.select([s], [], [], 0.1)
            if r:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                got += chunk
                if not chunk or b"\n" in got:
                    closed_at = time.monotonic() - t0
                    break
            if time.monotonic() - t0 > 0.2:
                _assert_prompt_normal_check(c, "a slow client")
        if closed_at is None:
            r, _, _ = select.select([s], [], [], 2.0)
            closed_at = time.monotonic() - t0
            if r:
                got += s.recv(4096)
    finally:
        s.close()
    report(f"slow client: got {got!r} after {closed_at * 1000:.0f} ms")
    assert closed_at < 0.5 + 0.5, f"a slow client was held for {closed_at:.2f}s (client_timeout_ms = 500)"
    assert got == b"" or REPLY_RE.match(got), f"slow client got a partial or malformed reply {got!r}"


def test_megabyte_line_is_refused_quickly(shared_cluster, report):
    c = shared_cluster
    s = socket.create_connection(("127.0.0.1", c.agents[0].port), timeout=3)
    payload = b"a" * (1 << 20) + b"\n"
    send_err = []

    def send():
        try:
            s.sendall(payload)
        except OSError as e:
            send_err.append(e)
    t0 = time.monotonic()
    th = threading.Thread(target=send, daemon=True)
    th.start()
    got = b""
    try:
        _assert_prompt_normal_check(c, "a 1 MB request")
        while time.monotonic() - t0 < 2.0:
            r, _, _ = select.select([s], [], [], 0.1)
            if not r:
                continue
            try:
                chunk = s.recv(4096)
            except OSError:  # RST: closed with unread input
                break
            if not chunk:
                break
            got += chunk
            if b"\n" in got:
                break
        took = time.monotonic() - t0
    finally:
        s.close()
        th.join(3)
    report(f"1 MB line: got {got!r} after {took * 1000:.0f} ms")
    assert took < 1.0, f"a 1 MB request line was not answered or closed within 1 s (got {got!r})"
    assert got in (b"", b"down #bad-request\n"), f"a 1 MB request line got {got!r}"
    _assert_prompt_normal_check(c, "after a 1 MB request")


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\xff\xfe\x1b[31m\n", b"\xde\xad\xbe\xef" * 8, b"primary\x00\n", b"\x16\x03\x01\x02\x00\x01\x00",
], ids=["controls", "binary-no-newline", "nul-in-word", "tls-hello"])
def test_binary_garbage_is_a_bad_request(shared_cluster, garbage):
    c = shared_cluster
    reply = c.agents[0].request(garbage)
    assert reply == b"down #bad-request\n", f"{garbage!r} got {reply!r}"
    _assert_prompt_normal_check(c, "garbage")


@pytest.mark.cluster_conf(replicas=0, haproxy=False,
                          common={"agent": {"max_clients": 4, "client_timeout_ms": 3000, "request_idle_ms": 1000}})
def test_connections_over_max_clients_are_closed_not_queued(cluster, report):
    """max_clients = 4: of 12 connections that trickle bytes (and so are held until client_timeout),
    exactly 4 are held; the others are closed at once rather than queued."""
    c = cluster
    port = c.agents[0].port
    assert c.agents[0].ask("primary") == "up 100%"  # and no other client is connected now
    socks = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(12)]
    closed = {}
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 1.0:
            for i, s in enumerate(socks):
                if i in closed:
                    continue
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    closed[i] = (round(time.monotonic() - t0, 3), data)
                    continue
                try:
                    s.sendall(b"p")  # a byte well within request_idle_ms keeps the request open
                except OSError:
                    closed[i] = (round(time.monotonic() - t0, 3), b"<send failed>")
            time.sleep(0.1)
        held = [i for i in range(len(socks)) if i not in closed]
        report(f"max_clients=4, 12 trickling clients: {len(held)} held, {len(closed)} closed "
               f"(latest close at {max((v[0] for v in closed.values()), default=0):.3f}s)")
        assert len(held) == 4, f"{len(held)} connections held with max_clients = 4 (closed: {closed})"
        late = {i: v for i, v in closed.items() if v[0] > 0.5}
        assert len(closed) >= 8 and not late, f"over-cap connections not closed at once: {closed}"
        # while the cap is full, a new check is closed or answered at once, never left waiting
        t = time.monotonic()
        try:
            reply = cl.agent_request(port, b"primary\n", timeout=1.0)
        except OSError as e:
            reply = f"<{e}>".encode()
        assert time.monotonic() - t < 1.0 and not reply.startswith(b"<timed out"), \
            f"a check while the cap was full waited: {reply!r}"
    finally:
        for s in socks:
            s.close()
    cl.wait_until(lambda: c.agents[0].ask("primary", timeout=1) == "up 100%", 3,
                  desc="normal answers once the held clients are gone")
