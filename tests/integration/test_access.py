"""Who may talk to pgcheckd's ports, and what a crowd can do to the checks.

- [agent] allow (loopback by default): a client from elsewhere is closed at accept, before a byte is
  read, counted, and logged once a minute per address; IPv4 and IPv6.
- A flood of idle connections never locks HAProxy's checks out: a new connection takes the slot of the
  oldest unfinished one (per address first, then overall), and a check's request is read at accept.
"""

import re
import resource
import socket
import threading
import time

import psycopg2
import pytest

import cluster as cl


def ask_from(source, port, data=b"primary\n", family=socket.AF_INET, host="127.0.0.1", timeout=2.0):
    """Connect from the address `source` (bound), send data, return everything until the close."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect((host, port))
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return buf


def metric(agent, name):
    with socket.create_connection(("127.0.0.1", agent.port), timeout=3) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        text = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            text += chunk
    m = re.search(rb"^" + name.encode() + rb" (\d+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


@pytest.mark.cluster_conf(replicas=1, haproxy=False)
def test_a_client_from_an_address_not_allowed_gets_no_byte(cluster, report):
    a = cluster.agents[0]
    assert ask_from("127.0.0.1", a.port) == b"up 100%\n"
    denied0 = metric(a, "pgcheckd_clients_denied_total")
    log0 = len(a.log())
    # the default allows 127.0.0.0/8 and ::1: make it one address to try a neighbour
    a.write_conf({"agent": {"allow": "127.0.0.1, ::1"}})
    a.sighup()
    cl.wait_until(lambda: ask_from("127.0.0.2", a.port) == b"", 5, desc="the reload to deny 127.0.0.2")
    replies = [ask_from("127.0.0.2", a.port) for _ in range(20)]
    assert replies == [b""] * 20, replies
    assert ask_from("127.0.0.1", a.port) == b"up 100%\n"
    # HTTP and /metrics from outside: nothing either
    assert ask_from("127.0.0.2", a.port, b"GET /status HTTP/1.0\r\n\r\n") == b""
    denied = metric(a, "pgcheckd_clients_denied_total") - denied0
    lines = [l for l in a.log()[log0:].splitlines() if "refused a connection from 127.0.0.2" in l]
    report(f"21+ connections from 127.0.0.2: denied +{denied}, {len(lines)} log line(s): {lines[:1]}")
    assert denied >= 21
    assert len(lines) == 1, lines  # once a minute per address, never per connection
    assert "[agent] allow" in lines[0]


@pytest.mark.cluster_conf(replicas=1, haproxy=False)
def test_ipv6_clients_are_matched_too(cluster):
    a = cluster.agents[0]
    port = cl.free_ports(1)[0]
    a.stop()
    a.write_conf({"agent": {"listen": f"[::]:{port}", "allow": "::1"}})
    a.port = port
    a.start()
    cl.wait_until(lambda: ask_from("::1", port, family=socket.AF_INET6, host="::1") == b"up 100%\n", 10,
                  desc="an answer over IPv6 from ::1")
    # an IPv4 client on the IPv6 socket is an IPv4 address: not in "::1"
    assert ask_from("::ffff:127.0.0.1", port, family=socket.AF_INET6, host="::ffff:127.0.0.1") == b""
    a.stop()
    a.write_conf({"agent": {"allow": "127.0.0.1"}})
    a.start()
    cl.wait_until(lambda: ask_from("::ffff:127.0.0.1", port, family=socket.AF_INET6, host="::ffff:127.0.0.1")
                  == b"up 100%\n", 10, desc="an answer to an IPv4 client on the IPv6 socket")
    assert ask_from("::1", port, family=socket.AF_INET6, host="::1") == b""


def test_the_shipped_configuration_allows_loopback_only():
    text = (cl.REPO / "conf" / "pgcheckd.ini").read_text()
    assert re.search(r"^;? ?allow = 127\.0\.0\.0/8, ::1$", text, re.M), "conf/pgcheckd.ini: allow"


FLOOD = 2000
BURSTS = 3


def flood(port, source, n, hold_s, stop):
    """n connections that send nothing, held hold_s (or until stop), then closed."""
    socks = []
    try:
        for _ in range(n):
            if stop.is_set():
                break
            s = socket.socket()
            s.setblocking(False)
            s.bind((source, 0))
            try:
                s.connect((("127.0.0.1", port)))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            socks.append(s)
        stop.wait(hold_s)
    finally:
        for s in socks:
            s.close()
    return len(socks)


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.9"], ids=["haproxys-own-address", "another-address"])
def test_a_flood_of_idle_connections_never_takes_the_primary_out(cluster, report, source):
    """2000 idle connections to the primary's pgcheckd, three times, while a real HAProxy checks it every
    200 ms with fall 1 and a writer writes through HAProxy: the primary never changes state in be_primary
    and no write fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, FLOOD + 1024), max(hard, FLOOD + 1024)))
    c = cluster
    port = c.agents[0].port
    stop = threading.Event()
    states, writes = [], {"ok": 0, "failed": 0, "errors": set()}

    def sample():
        while not stop.is_set():
            try:
                states.append(c.haproxy.status("be_primary", "node1"))
            except Exception as e:  # noqa: BLE001
                states.append(f"<{e}>")
            time.sleep(0.02)

    def write():
        while not stop.is_set():
            try:
                with psycopg2.connect(host="127.0.0.1", port=c.ports["write"], user=cl.PG_USER, dbname="postgres",
                                      connect_timeout=2) as conn:
                    conn.autocommit = True
                    conn.cursor().execute("SELECT 1")
                writes["ok"] += 1
            except psycopg2.Error as e:
                writes["failed"] += 1
                writes["errors"].add(str(e).strip().splitlines()[0][:80])
            time.sleep(0.02)

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=write, daemon=True)]
    for t in threads:
        t.start()
    opened = []
    try:
        time.sleep(0.5)
        for _ in range(BURSTS):
            opened.append(flood(port, source, FLOOD, 1.5, threading.Event()))
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    changes = sum(1 for a, b in zip(states, states[1:]) if a.split()[0] != b.split()[0])
    down = sum(1 for s in states if not s.startswith("UP"))
    try:
        evicted = metric(c.agents[0], "pgcheckd_clients_evicted_total")
    except AssertionError:
        evicted = "n/a"  # a pgcheckd from before eviction
    report(f"flood from {source}: {opened} connections in {BURSTS} bursts; {len(states)} samples of be_primary/node1, "
           f"{changes} state changes, {down} not UP; writes ok={writes['ok']} failed={writes['failed']} "
           f"{sorted(writes['errors'])[:2]}; evicted {evicted}")
    assert min(opened) >= FLOOD * 0.9, opened
    assert writes["ok"] > 50
    assert changes == 0 and down == 0, states
    assert writes["failed"] == 0, writes
