"""Authenticated peers ([peers] key_file): a peer's answer counts only with a MAC over this read's challenge.

A fake peer (a small server on a configured peer address) answers `role=primary` on a high timeline with
no MAC, with a MAC made with a wrong key, and with a real answer captured earlier (replayed): nobody is
fenced, the rejection is counted in /metrics and logged once. Two real peers with the right key still
fence a real split brain. A key file that is group- or world-readable is refused at start and at reload.

The protocol, as the test speaks it (see the README's fencing section):
  request  "peer-state nonce=<32 hex> mac=<32 hex>\\n"
           mac = HMAC-SHA256(key, "pgcheckd peer-state request v1\\n" + "peer-state nonce=<hex>"), first 16 bytes
  answer   "state role=R timeline=T sysid=S fenced=F nonce=<the request's> mac=<32 hex>\\n"
           mac = HMAC-SHA256(key, "pgcheckd peer-state answer v1\\n" + nonce + "\\n" + the line before " mac=")
"""

import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import cluster as cl
from fake_peer import FakePeer

REQUEST_LABEL = b"pgcheckd peer-state request v1\n"
ANSWER_LABEL = b"pgcheckd peer-state answer v1\n"
KEY = "6f1c" + "a7" * 30  # 64 bytes of text, as `openssl rand -hex 32` writes (less its newline)


def write_key(path, key=KEY, mode=0o600):
    path.write_text(key + "\n")
    os.chmod(path, mode)
    return path


def mac(key, data):
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()[:32]  # HMAC-SHA256-128


def signed_request(key, nonce=None):
    nonce = nonce or secrets.token_hex(16)
    line = f"peer-state nonce={nonce}"
    return f"{line} mac={mac(key, REQUEST_LABEL + line.encode())}\n", nonce


def signed_answer(key, nonce, state):
    content = f"{state} nonce={nonce}"
    tag = mac(key, ANSWER_LABEL + nonce.encode() + b"\n" + content.encode())
    return f"{content} mac={tag}\n"


def request_nonce(line):
    m = re.match(r"^peer-(?:state|alert) nonce=([0-9a-f]{32}) mac=[0-9a-f]{32}\n$", line)  # alert: a role changed
    return m.group(1) if m else None


def metrics(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    return raw.decode(errors="replace")


def rejected(port, reason):
    m = re.search(r'^pgcheckd_peer_answers_rejected_total\{reason="%s"\} (\d+)$' % re.escape(reason), metrics(port),
                  re.M)
    return int(m.group(1)) if m else None


def single_node_with_fake_peer(answer, key=KEY):
    """A one-node cluster (a primary on timeline 1) whose only peer is a fake on a free port."""
    c = cl.Cluster(replicas=0)
    taken = {c.ports["write"], c.ports["read"], c.ports["api"], *c.ports["pg"], *c.ports["agent"]}
    port = next(p for p in cl.free_ports(8) if p not in taken)
    fake = FakePeer(port, answer)
    fake.start()
    keyfile = write_key(c.tmp / "peers.key", key)
    c.pgcheckd_conf = {0: {"peers": {"addresses": f"127.0.0.1:{port}", "key_file": str(keyfile)}}}
    try:
        c.start(haproxy=False)
    except Exception:
        fake.stop()
        raise
    return c, fake


def assert_never_fenced(c, seconds=3.0):
    """The primary answers up for `seconds` (well past [peers] fresh_ms, 2 s, and many peer reads)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ans = c.agents[0].ask("primary")
        assert ans == "up 100%", ans
        time.sleep(0.05)


def sysid(c):
    return c.pg[0].sql1("SELECT system_identifier FROM pg_control_system()")


def check_spoof(answer_for, reason):
    holder = {}

    def answer(line):
        if "c" not in holder:
            return None  # not ready yet: the peer closes, as one unreachable
        return answer_for(holder, line)

    c, fake = single_node_with_fake_peer(answer)
    try:
        holder["sysid"] = sysid(c)  # the worst case: the spoofer knows the cluster's system identifier
        holder["c"] = c
        cl.wait_until(lambda: len(fake.requests) >= 3, 5, desc="the fake peer to be read")
        assert_never_fenced(c)
        assert all(request_nonce(r) for r in fake.requests), fake.requests[:3]
        assert len(set(request_nonce(r) for r in fake.requests)) == len(fake.requests), "a nonce was reused"
        n = cl.wait_until(lambda: rejected(c.agents[0].port, reason), 5, desc=f"rejections ({reason}) counted")
        assert n >= 3, n
        log = c.agents[0].log()
        lines = [ln for ln in log.splitlines() if f"peer 127.0.0.1:{fake.sock.getsockname()[1]}" in ln and
                 "not believed" in ln]
        assert len(lines) == 1, lines  # once per episode, not per read
        assert reason in lines[0], lines
        assert KEY not in log
        st = c.agents[0].ask("primary")
        assert st == "up 100%", st
        return c, fake
    finally:
        c.close()
        fake.stop()


def test_spoofed_peer_primary_without_mac_fences_no_one():
    check_spoof(lambda h, line: f"state role=primary timeline=2147483647 sysid={h['sysid']} fenced=0\n",
                "no-mac")


def test_spoofed_peer_primary_with_a_wrong_key_fences_no_one():
    wrong = "0" * 64

    def answer(h, line):
        nonce = request_nonce(line) or "0" * 32
        return signed_answer(wrong, nonce, f"state role=primary timeline=2147483647 sysid={h['sysid']} fenced=0")
    check_spoof(answer, "bad-mac")


def test_replayed_real_answer_fences_no_one():
    """A real answer (the node's own, as a primary on timeline 1: believed, it would fence it as a split
    brain), captured with its MAC from an earlier exchange and sent back to a later challenge."""
    captured = {}

    def answer(h, line):
        if "line" not in captured:
            req, _ = signed_request(KEY)  # the exchange an eavesdropper saw: made by a node with the key
            captured["line"] = cl.agent_request(h["c"].agents[0].port, req).decode()
        return captured["line"]
    check_spoof(answer, "nonce-mismatch")
    assert captured["line"].startswith("state role=primary timeline=1 sysid="), captured
    assert " mac=" in captured["line"]


def test_keyed_node_answers_no_state_to_an_unauthenticated_reader():
    c, fake = single_node_with_fake_peer(lambda line: None)
    try:
        port = c.agents[0].port
        assert c.agents[0].ask("peer-state") == "down #unauthenticated"
        req, _ = signed_request("f" * 64)
        assert cl.agent_request(port, req).decode() == "down #unauthenticated\n"
        req, nonce = signed_request(KEY)
        ans = cl.agent_request(port, req).decode()
        # the fencing fields first, then what else the node tells (name=, read=, lsn=, ...: see the cluster view)
        m = re.match(r"^(state role=primary timeline=1 sysid=(\d+) fenced=0(?: [a-z_]+=[!-~]+)* nonce=([0-9a-f]{32}))"
                     r" mac=([0-9a-f]{32})\n$", ans)
        assert m, ans
        assert int(m.group(2)) == sysid(c) and m.group(3) == nonce
        assert m.group(4) == mac(KEY, ANSWER_LABEL + nonce.encode() + b"\n" + m.group(1).encode())
        # the same request again (a replayed request) gets a new answer to the same nonce: harmless to the
        # reader, who accepts only its own fresh nonce; the answer never carries another reader's nonce
        assert KEY not in c.agents[0].log()
    finally:
        c.close()
        fake.stop()


def test_two_real_peers_with_the_key_still_fence_a_split_brain():
    c = cl.Cluster(replicas=2)
    keyfile = write_key(c.tmp / "peers.key")
    ports = c.ports["agent"]
    c.pgcheckd_conf = {i: {"peers": {"addresses": ", ".join(f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i),
                                     "key_file": str(keyfile)}} for i in range(3)}
    try:
        c.start()
        cl.wait_until(lambda: all(re.search(r'^pgcheckd_peers\{state="fresh"\} 2$', metrics(a.port), re.M)
                                  for a in c.agents), 10, desc="every node to hear from both peers")
        c.pg[1].promote()  # node1 keeps running: two primaries in PostgreSQL's eyes
        fenced = cl.wait_until(lambda: c.agents[0].ask("primary").startswith("down #fenced") and
                               c.agents[0].ask("primary"), 5, interval=0.01, desc="node1 fenced")
        assert "newer primary on timeline 2" in fenced, fenced
        cl.wait_until(lambda: c.haproxy.status("be_primary", "node1").startswith("DOWN"), 5, interval=0.01)
        # be_primary: node2 alone. node3 (still streaming from node1) is a fork once node1 wrote WAL past
        # node2's floor, else only stale and up: either, so be_replicas is not asserted here
        cl.wait_until(lambda: {s for s, (st, _) in c.haproxy.states("be_primary").items() if st.startswith("UP")}
                      == {"node2"}, 10, desc="be_primary UP = node2 alone")
        for a in c.agents:
            for reason in ("no-mac", "bad-mac", "nonce-mismatch", "refused", "malformed"):
                assert rejected(a.port, reason) == 0, (a.name, reason)
            assert "not believed" not in a.log() and KEY not in a.log()
    finally:
        c.close()


def test_loose_key_file_is_refused_at_start_and_at_reload():
    c = cl.Cluster(replicas=0)
    try:
        keyfile = write_key(c.tmp / "peers.key", mode=0o644)
        c.pgcheckd_conf = {0: {"peers": {"addresses": "127.0.0.1:1", "key_file": str(keyfile)}}}
        c.start(pgcheckd=False, haproxy=False)
        a = c.agents[0]
        text = a.ini.read_text().splitlines()
        line = next(i + 1 for i, ln in enumerate(text) if ln.startswith("key_file"))
        rc, out, err = a.check_config()
        assert rc == 2, (rc, out, err)
        assert f"{a.ini}:{line}: [peers] key_file: " in err and "0644" in err and "chmod 600" in err, err
        a.start(wait=False)
        assert a.wait_exit(10) == 2
        assert f"{a.ini}:{line}: [peers] key_file:" in a.log() and KEY not in a.log()
        # too short and empty are refused too, saying the minimum
        write_key(keyfile, "abc")
        rc, _, err = a.check_config()
        assert rc == 2 and "at least 32 bytes" in err, err
        write_key(keyfile, "")
        rc, _, err = a.check_config()
        assert rc == 2 and "empty" in err, err
        # a good file starts; loosened, a reload is refused and the running key stays
        write_key(keyfile)
        a.start()
        cl.wait_until(lambda: a.ask("health") == "up 100%", 10)
        os.chmod(keyfile, 0o644)
        a.sighup()
        cl.wait_until(lambda: "reload failed" in a.log(), 5, desc="the reload refused")
        msg = next(ln for ln in a.log().splitlines() if "reload failed" in ln)
        assert f"{a.ini}:{line}: [peers] key_file: " in msg and "0644" in msg, msg
        req, _ = signed_request(KEY)
        assert cl.agent_request(a.port, req).decode().startswith("state role=primary")
        assert a.ask("peer-state") == "down #unauthenticated"
        assert KEY not in a.log()
    finally:
        c.close()


def test_key_is_read_again_at_reload():
    """Two keyed peers; one reloads with another key: each refuses the other (counted, logged once),
    and once the key is the same again their answers are believed again."""
    c = cl.Cluster(replicas=1)
    try:
        keyfile, other = write_key(c.tmp / "peers.key"), write_key(c.tmp / "other.key", "9" * 64)
        ports = c.ports["agent"]
        c.pgcheckd_conf = {i: {"peers": {"addresses": f"127.0.0.1:{ports[1 - i]}", "key_file": str(keyfile)}}
                           for i in range(2)}
        c.start(haproxy=False)
        a0, a1 = c.agents
        for a in c.agents:
            cl.wait_until(lambda a=a: re.search(r'^pgcheckd_peers\{state="fresh"\} 1$', metrics(a.port), re.M), 10)
        a0.write_conf({"peers": {"key_file": str(other)}})
        a0.sighup()
        for a in c.agents:
            cl.wait_until(lambda a=a: (rejected(a.port, "refused") or 0) >= 3, 10, desc=f"{a.name} refused")
            cl.wait_until(lambda a=a: re.search(r'^pgcheckd_peers\{state="fresh"\} 0$', metrics(a.port), re.M), 10,
                          desc=f"{a.name} no longer hears from its peer")
            assert sum("not believed (refused)" in ln for ln in a.log().splitlines()) == 1, a.log()
        a0.write_conf({"peers": {"key_file": str(keyfile)}})
        a0.sighup()
        for a in c.agents:
            cl.wait_until(lambda a=a: "its answers are believed again" in a.log(), 10, desc=f"{a.name} believes again")
            cl.wait_until(lambda a=a: re.search(r'^pgcheckd_peers\{state="fresh"\} 1$', metrics(a.port), re.M), 10)
            assert KEY not in a.log() and "9" * 64 not in a.log()
    finally:
        c.close()


VALGRIND = shutil.which("valgrind")


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
@pytest.mark.skipif(os.environ.get("PGCHECKD_SANITIZED") == "1",
                    reason="the sanitizer build cannot run under valgrind")
def test_authenticated_peers_are_clean_under_valgrind():
    """Two keyed peers under valgrind read each other (MACs made and checked), answer unauthenticated
    and signed requests, reload and exit: no memory error, no leak."""
    c = cl.Cluster(replicas=1)
    try:
        keyfile = write_key(c.tmp / "peers.key")
        ports = c.ports["agent"]
        c.start(pgcheckd=False, haproxy=False)
        results = []
        for i, agent in enumerate(c.agents):
            agent.write_conf({"peers": {"addresses": f"127.0.0.1:{ports[1 - i]}", "key_file": str(keyfile)},
                              "agent": {"shutdown_drain_ms": "0"}})
            vlog = c.tmp / f"valgrind{i}.log"
            proc = subprocess.Popen([VALGRIND, "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
                                     "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
                                     f"--log-file={vlog}", cl.PGCHECKD_BIN, "-c", str(agent.ini)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c._procs.append(proc)
            results.append((agent, proc, vlog))
        for agent, _, _ in results:
            cl.wait_until(lambda: agent.ask("health").startswith("up"), 60, desc="first sample under valgrind")
        for agent, _, _ in results:
            cl.wait_until(lambda: re.search(r'^pgcheckd_peers\{state="fresh"\} 1$', metrics(agent.port), re.M), 30,
                          desc="the keyed peer heard from under valgrind")
            assert agent.ask("peer-state") == "down #unauthenticated"
            req, _ = signed_request(KEY)
            assert cl.agent_request(agent.port, req, timeout=5).decode().startswith("state role=")
            req, _ = signed_request("0" * 64)
            assert cl.agent_request(agent.port, req, timeout=5).decode() == "down #unauthenticated\n"
        for _, proc, _ in results:
            proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        for _, proc, _ in results:
            proc.send_signal(signal.SIGTERM)
        for _, proc, vlog in results:
            code = proc.wait(60)
            text = vlog.read_text()
            summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            assert summary is not None, text[-2000:]
            assert code == 0 and summary.group(1) == "0", text[-4000:]
    finally:
        c.close()
