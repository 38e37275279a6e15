"""pgcheckd under valgrind against a real primary and replica: every protocol, a reload, a PostgreSQL
restart and a clean shutdown, with no memory error and no leak reported."""

import re
import shutil
import signal
import subprocess
import time

import os

import pytest

import cluster as cl

VALGRIND = shutil.which("valgrind")


def exercise(port, admin_sock_ini):
    """One of everything a client can send."""
    for req in (b"primary\n", b"replica\n", b"read-only lag=1MB\n", b"health", b"", b"\x00\xff garbage\n",
                b"x" * 5000, b"GET /status HTTP/1.0\r\n\r\n", b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
                b"HEAD /replica?lag=16MB HTTP/1.1\r\n\r\n", b"OPTIONS /primary HTTP/1.0\r\n\r\n",
                b"POST / HTTP/1.0\r\n\r\n", b"GET /nope HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nbroken\r\n\r\n"):
        try:
            cl.agent_request(port, req, timeout=5, shut_wr=True)
        except OSError:
            pass
    for args in (["ctl", "status"], ["ctl", "drain"], ["check", "primary"], ["ctl", "ready"]):
        subprocess.run([cl.PGCHECKD_BIN, "-c", admin_sock_ini, *args], capture_output=True, timeout=10)


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
@pytest.mark.skipif(os.environ.get("PGCHECKD_SANITIZED") == "1",
                    reason="the sanitizer build cannot run under valgrind; `make integration` runs this test")
def test_no_leaks_or_memory_errors_under_valgrind():
    c = cl.Cluster(replicas=1)
    try:
        c.start(pgcheckd=False, haproxy=False)
        results = []
        for i, agent in enumerate(c.agents):
            agent.write_conf({"admin": {"socket": str(c.tmp / f"vg{i}.sock")}, "agent": {"shutdown_drain_ms": "300"}})
            vlog = c.tmp / f"valgrind{i}.log"
            proc = subprocess.Popen([VALGRIND, "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
                                     "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
                                     f"--log-file={vlog}", cl.PGCHECKD_BIN, "-c", str(agent.ini)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c._procs.append(proc)
            results.append((agent, proc, vlog))
        for agent, proc, _ in results:
            cl.wait_until(lambda: cl.port_accepts(agent.port), 30, desc="pgcheckd under valgrind to listen")
            cl.wait_until(lambda: agent.ask("health").startswith("up"), 30, desc="first sample under valgrind")
        for agent, proc, _ in results:
            exercise(agent.port, str(agent.ini))
            proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        c.pg[1].restart()
        cl.wait_until(lambda: results[1][0].ask("replica").startswith("up"), 30, desc="replica back")
        for agent, proc, _ in results:
            exercise(agent.port, str(agent.ini))
            proc.send_signal(signal.SIGTERM)
        for agent, proc, vlog in results:
            code = proc.wait(60)
            text = vlog.read_text()
            summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            assert summary is not None, text[-2000:]
            assert code == 0 and summary.group(1) == "0", text[-4000:]
            assert "definitely lost" not in text or "definitely lost: 0 bytes" in text, text[-4000:]
    finally:
        c.close()


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
@pytest.mark.skipif(os.environ.get("PGCHECKD_SANITIZED") == "1",
                    reason="the sanitizer build cannot run under valgrind; `make integration` runs this test")
def test_no_leaks_or_memory_errors_under_valgrind_with_tls(tmp_path):
    """TLS on both ports: good handshakes, plain text, half a ClientHello, no client certificate, a
    certificate swapped on reload, and a clean shutdown."""
    import socket
    import ssl

    import test_tls as t

    pki = t.Pki(tmp_path / "pki")
    pki.ca("ca")
    pki.cert("server")
    pki.cert("server2")
    pki.cert("client", cn="haproxy", san="DNS:haproxy")
    c = cl.Cluster(replicas=0)
    try:
        c.start(pgcheckd=False, haproxy=False)
        agent = c.agents[0]
        http_port = cl.free_ports(1)[0]
        agent.write_conf(cl.merge_conf({"admin": {"socket": str(c.tmp / "vgtls.sock")},
                                        "agent": {"shutdown_drain_ms": "300", "client_timeout_ms": "2000"}},
                                       t.tls_node_conf(pki, http_port)))
        vlog = c.tmp / "valgrind-tls.log"
        proc = subprocess.Popen([VALGRIND, "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
                                 "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
                                 f"--log-file={vlog}", cl.PGCHECKD_BIN, "-c", str(agent.ini)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c._procs.append(proc)
        ctx = t.tls_context(pki)
        no_cert = t.tls_context(pki, client_cert=False)
        cl.wait_until(lambda: t.tls_request(agent.port, b"health\n", ctx, timeout=5).startswith(b"up"), 60,
                      desc="pgcheckd under valgrind to answer over TLS")

        def exercise():
            for req in (b"primary\n", b"replica\n", b"GET /status HTTP/1.0\r\n\r\n", b"x" * 5000):
                t.tls_request(agent.port, req, ctx, timeout=10)
            assert t.tls_request(http_port, b"GET /metrics HTTP/1.0\r\n\r\n", ctx, timeout=10).startswith(b"HTTP/1.")
            for port, data in ((agent.port, b"primary\n"), (http_port, t.half_client_hello())):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(data)
                    t.read_until_closed(s, 10)
            try:
                t.tls_request(agent.port, b"primary\n", no_cert, timeout=10)
            except (OSError, ssl.SSLError):
                pass
        exercise()
        shutil.copy(pki.dir / "server2.pem", pki.dir / "server.pem")
        shutil.copy(pki.dir / "server2.key", pki.dir / "server.key")
        proc.send_signal(signal.SIGHUP)
        second = t.file_fingerprint(pki.dir / "server2.pem")
        cl.wait_until(lambda: t.tls_request(agent.port, b"primary\n", ctx, timeout=5, want_cert=True)[1] == second,
                      30, desc="the new certificate served")
        exercise()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        text = vlog.read_text()
        summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        assert summary is not None, text[-2000:]
        assert code == 0 and summary.group(1) == "0", text[-4000:]
        assert "definitely lost" not in text or "definitely lost: 0 bytes" in text, text[-4000:]
    finally:
        c.close()
