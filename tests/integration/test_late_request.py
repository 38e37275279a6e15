"""A request that arrives late is still that request: a 'primary' check that reaches a replica's
pgcheckd 100 ms after the connection opened (a loaded host, a slow network) must be answered as
'primary' (down), never as the default request ('replica', up), which HAProxy's `expect ^up` would take
as a write target."""

import socket
import time


def late_request(port, data, delay_s):
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        time.sleep(delay_s)
        s.sendall(data)
        s.settimeout(3)
        return s.recv(256)


def test_late_primary_check_on_a_replica_is_not_answered_as_the_default(shared_cluster):
    replica = shared_cluster.agents[1]
    assert replica.ask("") != "" and replica.ask("").startswith("up")  # the default (replica) is up here
    for delay in (0.05, 0.1, 0.15):
        assert late_request(replica.port, b"primary\n", delay) == b"down #is-replica\n", delay
