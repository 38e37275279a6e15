"""A request that arrives late or in pieces can never make a node answer up for a role it does not
hold. The rule (README, "Agent line protocol"): only the answer to a complete request line (ended by
its newline) starts with `up`; whatever was answered without one (nothing asked within
request_wait_ms, a request ended by silence or by EOF) puts the weight first (`100% up`), which
HAProxy's agent-check reads the same and a fail-closed `tcp-check expect rstring ^up` never takes."""

import re
import socket
import threading
import time

import pytest

import cluster as cl
from relay import Relay

UP_FOR_A_CHECK = re.compile(rb"^up")  # what the README's tcp-check expects


def late_request(port, pieces, timeout=4.0):
    """Connect, then send each (delay_s, bytes) piece after its delay; return what came back (until
    close or newline). A piece that cannot be sent any more (pgcheckd answered and closed) is skipped."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for delay, data in pieces:
            time.sleep(delay)
            try:
                s.sendall(data)
            except OSError:
                break
        s.settimeout(timeout)
        buf = b""
        try:
            while b"\n" not in buf:
                chunk = s.recv(256)
                if not chunk:
                    break
                buf += chunk
        except ConnectionResetError:
            pass
        return buf


@pytest.mark.parametrize("delay", [0, 0.1, 0.25, 0.5, 1, 2])
def test_late_primary_check_on_a_replica_never_reads_as_up(shared_cluster, delay):
    replica = shared_cluster.agents[1]
    reply = late_request(replica.port, [(delay, b"primary\n")])
    assert reply, "no answer at all"
    assert not UP_FOR_A_CHECK.match(reply), (delay, reply)
    if delay < 0.15:  # well inside request_wait_ms (200): answered as what was asked
        assert reply == b"down #is-replica\n", (delay, reply)


@pytest.mark.parametrize("pieces", [
    [(0, b"pri"), (0.05, b"mary\n")],
    [(0, b"pri"), (0.3, b"mary\n")],
    [(0.1, b"p"), (0.1, b"rim"), (0.1, b"ary\n")],
    [(0, b"primary"), (0.05, b"\n")],
    [(0, b"primary"), (0.3, b"\n")],
], ids=["gap50ms", "gap300ms", "three-pieces", "newline-late", "newline-very-late"])
def test_primary_check_in_pieces_on_a_replica_never_reads_as_up(shared_cluster, pieces):
    replica = shared_cluster.agents[1]
    reply = late_request(replica.port, pieces)
    assert reply.endswith(b"\n") and not UP_FOR_A_CHECK.match(reply), (pieces, reply)


def test_no_request_puts_the_weight_first(shared_cluster):
    """HAProxy's agent-check without agent-send still gets the default request's state and weight."""
    replica = shared_cluster.agents[1]
    assert re.fullmatch(rb"\d+% up\n", replica.request(b"")), replica.request(b"")
    # a request ended by EOF instead of its newline: the same form
    assert re.fullmatch(rb"\d+% up\n", replica.request(b"replica", shut_wr=True))
    # a whole line: the usual form
    assert re.fullmatch(rb"up \d+%\n", replica.request(b"replica\n"))


@pytest.mark.cluster_conf(haproxy=False)
def test_haproxy_with_delayed_check_traffic_never_has_a_replica_up_for_writes(cluster, report):
    """A real HAProxy running conf/haproxy.cfg whose checks of one replica pass through a relay that
    holds the request bytes back 300 ms: that replica must never be UP in be_primary."""
    with Relay(cluster.agents[1].port, up_delay_s=0.3) as relay:
        ports = cluster.ports
        mapping = {cl.DEMO_PORTS["write"]: ports["write"], cl.DEMO_PORTS["read"]: ports["read"],
                   cl.DEMO_PORTS["api"]: ports["api"]}
        for i in range(3):
            mapping[cl.DEMO_PORTS["pg"][i]] = ports["pg"][i]
            mapping[cl.DEMO_PORTS["agent"][i]] = relay.port if i == 1 else ports["agent"][i]
        cluster.haproxy = cl.Haproxy(cluster, mapping).start()
        # HAProxy counts every server UP until its first check (the README's frontend refuses writes
        # then): count from the first finished check of the relayed replica on
        first = cl.wait_until(lambda: cluster.haproxy.servers("be_primary")["node2"]["check_status"]
                              not in ("", "INI", "* INI") and cluster.haproxy.servers("be_primary")["node2"],
                              10, interval=0.01, desc="HAProxy's first check of node2")
        report(f"first check of the relayed replica: {first['check_status']} {first['status']}")
        samples, replica_up = 0, 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            st = cluster.haproxy.states("be_primary")
            samples += 1
            if st["node2"][0].startswith("UP"):
                replica_up += 1
            time.sleep(0.05)
        checks_relayed = relay.connections
        # the primary is still taken: the delay costs the replica only
        assert cluster.haproxy.status("be_primary", "node1").startswith("UP")
    report(f"{samples} samples of show stat, {checks_relayed} connections through the relay, "
           f"replica UP in be_primary in {replica_up}")
    assert checks_relayed >= 10
    assert replica_up == 0


def test_late_requests_from_many_clients_never_read_as_up(shared_cluster):
    """Late requests side by side: none of them is answered as the default."""
    replica = shared_cluster.agents[1]
    replies = []

    def one(delay):
        replies.append(late_request(replica.port, [(delay, b"primary\n")]))
    threads = [threading.Thread(target=one, args=(0.19 + 0.005 * i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(replies) == 8
    assert not [r for r in replies if UP_FOR_A_CHECK.match(r)], replies
