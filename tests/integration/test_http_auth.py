"""HTTP only where wanted, and /status and /metrics only for who proves it: [agent] http and [http]
basic_auth_file / token_file / protect, against the real pgcheckd and PostgreSQL."""

import base64
import os
import socket

import pytest

import cluster as cl

USER_PASS = "monitor:pw-0123456789abcdef"
TOKEN = "tok-" + "ab" * 16


def http(port, path, headers=""):
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n{headers}\r\n".encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), body.decode()


def secret(tmp, name, text, mode=0o600):
    path = tmp / name
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return str(path)


@pytest.mark.cluster_conf(replicas=1, haproxy=False)
def test_status_and_metrics_need_the_credential_health_paths_stay_open(cluster, report):
    a = cluster.agents[0]
    basic = secret(cluster.tmp, "basic", USER_PASS)
    token = secret(cluster.tmp, "token", TOKEN)
    assert http(a.port, "/status")[0] == 200  # nothing configured: open, as before
    a.write_conf({"http": {"basic_auth_file": basic, "token_file": token}})
    a.sighup()
    cl.wait_until(lambda: http(a.port, "/status")[0] == 401, 5, desc="the reload to protect /status")
    status, head, body = http(a.port, "/metrics")
    assert status == 401 and 'WWW-Authenticate: Basic realm="pgcheckd"' in head and "pgcheckd_" not in body
    good_basic = "Authorization: Basic " + base64.b64encode(USER_PASS.encode()).decode() + "\r\n"
    assert http(a.port, "/metrics", good_basic)[0] == 200
    assert http(a.port, "/status", f"Authorization: Bearer {TOKEN}\r\n")[0] == 200
    assert http(a.port, "/status", f"Authorization: Bearer {TOKEN[:-1]}x\r\n")[0] == 401
    assert http(a.port, "/status", "Authorization: Basic " + base64.b64encode(b"monitor:wrong").decode()
                + "\r\n")[0] == 401
    # HAProxy's health checks keep working without it; the body tells only up or not
    status, _, body = http(a.port, "/primary")
    assert status == 200 and body == '{"up":true}\n'
    assert http(a.port, "/replica")[0] == 503
    assert "timeline" in http(a.port, "/primary", good_basic)[2]
    # the agent line is not HTTP: unchanged
    assert a.ask("primary") == "up 100%"
    # no secret in the log
    assert TOKEN not in a.log() and "pw-0123456789abcdef" not in a.log()
    report("/status, /metrics: 401 without, 200 with Basic or Bearer; /primary 200 with {\"up\":true}")


@pytest.mark.cluster_conf(replicas=1, haproxy=False)
def test_health_paths_can_be_protected_too(cluster):
    a = cluster.agents[0]
    token = secret(cluster.tmp, "token", TOKEN)
    a.write_conf({"http": {"token_file": token, "protect": "status, metrics, bodies, checks"}})
    a.sighup()
    cl.wait_until(lambda: http(a.port, "/primary")[0] == 401, 5, desc="the reload to protect the checks")
    assert http(a.port, "/primary", f"Authorization: Bearer {TOKEN}\r\n")[0] == 200
    assert http(a.port, "/liveness")[0] == 200


@pytest.mark.cluster_conf(replicas=1, haproxy=False)
def test_http_off_on_the_agent_port(cluster):
    a = cluster.agents[0]
    port = cl.free_ports(1)[0]
    a.stop()
    a.write_conf({"agent": {"http": "false", "http_listen": f"127.0.0.1:{port}"}})
    a.start()
    assert a.request(b"GET /primary HTTP/1.0\r\n\r\n") == b"down #bad-request\n"
    # listening comes before the first sample: "starting" until it is in (seen once under load)
    cl.wait_until(lambda: a.ask("primary") == "up 100%", 5, desc="the primary up after the restart")
    assert http(port, "/primary")[0] == 200  # the HTTP-only port is not affected


@pytest.mark.cluster_conf(replicas=1, haproxy=False)
def test_a_credential_file_others_may_read_is_refused(cluster):
    a = cluster.agents[0]
    loose = secret(cluster.tmp, "loose", TOKEN, mode=0o644)
    a.write_conf({"http": {"token_file": loose}})
    rc, _, out = a.check_config()
    assert rc == 2 and "[http] token_file" in out and "0644" in out and "chmod 600" in out, out
    assert TOKEN not in out
    short = secret(cluster.tmp, "short", "abc")
    a.write_conf({"http": {"token_file": short}})
    rc, _, out = a.check_config()
    assert rc == 2 and "at least 16 bytes" in out, out
