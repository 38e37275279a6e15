"""Peer names resolve off the event loop: a reload with a peer name whose DNS answer takes seconds never
delays a check, the name counts as an unreachable peer until it resolves, and then the peer is read.

The slow DNS is real: pgcheckd runs in a mount namespace of its own (`unshare -m`) whose
/etc/resolv.conf names a nameserver this test runs on a loopback address; that server answers after a
delay the test sets. Needs root (port 53, the bind mount); skipped otherwise.
"""

import json
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import cluster as cl

DOMAIN = "pgcheckd.test"


class SlowDns:
    """A UDP nameserver on ip:53 that answers A queries under DOMAIN with 127.0.0.1 after delay_s seconds
    (AAAA: no record), and anything else with NXDOMAIN. It counts the questions it was asked."""

    def __init__(self, ip):
        self.ip, self.delay_s = ip, 0.0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 53))
        self.sock.settimeout(0.2)
        self.questions = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(query, peer, self.delay_s), daemon=True).start()

    def _answer(self, query, peer, delay_s):
        try:
            i, labels = 12, []
            while query[i] != 0:
                labels.append(query[i + 1:i + 1 + query[i]].decode())
                i += 1 + query[i]
            qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
            question = query[12:i + 5]
        except (IndexError, UnicodeDecodeError, struct.error):
            return
        name = ".".join(labels).lower()
        self.questions.append((time.monotonic(), name, qtype))
        time.sleep(delay_s)
        ours = name.endswith("." + DOMAIN)
        answers = b""
        if ours and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton("127.0.0.1")
        flags = 0x8180 if ours else 0x8183
        header = query[:2] + struct.pack("!HHHHH", flags, 1, 1 if answers else 0, 0, 0)
        try:
            self.sock.sendto(header + question + answers, peer)
        except OSError:
            pass

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def slow_dns(tmp_path, monkeypatch):
    """(server, wrapper): the nameserver, and a pgcheckd wrapper that runs it with a resolv.conf naming it."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private /etc/resolv.conf")
    server = None
    for _ in range(20):
        ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        try:
            server = SlowDns(ip)
            break
        except OSError:
            continue
    if server is None:
        pytest.skip("no free loopback address for port 53")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {server.ip}\noptions timeout:30 attempts:1\n")
    wrapper = tmp_path / "pgcheckd-slow-dns"
    wrapper.write_text("#!/bin/sh\n"
                       f"exec unshare -m --propagation private sh -c 'mount --bind {resolv} /etc/resolv.conf && "
                       f"exec {cl.PGCHECKD_BIN} \"$@\"' pgcheckd \"$@\"\n")
    wrapper.chmod(0o755)
    probe = subprocess.run([str(wrapper), "-V"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        server.close()
        pytest.skip(f"cannot run pgcheckd with a private resolv.conf: {probe.stderr.decode()[:200]}")
    monkeypatch.setattr(cl, "PGCHECKD_BIN", str(wrapper))
    yield server
    server.close()


def status(c, i):
    r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(c.agents[i].ini), "ctl", "status"], capture_output=True,
                       timeout=10)
    return json.loads(r.stdout.decode())


def test_reload_with_a_slowly_resolving_peer_name_delays_no_check(slow_dns, report):
    client_timeout_s = 1.0  # [agent] client_timeout_ms below: the bound the issue sets for an answer
    c = cl.Cluster(replicas=1)
    try:
        c.pgcheckd_conf = {0: {"peers": {"addresses": f"127.0.0.1:{c.ports['agent'][1]}"},
                               "agent": {"client_timeout_ms": "1000"}}}
        c.start(haproxy=False)
        assert c.agents[0].ask("primary") == "up 100%"
        cl.wait_until(lambda: status(c, 0)["peers"]["fresh"] == 1, 5, desc="the numeric peer read")
        slow_dns.delay_s = 4.0
        name = f"node2.{DOMAIN}"
        c.agents[0].write_conf({"peers": {"addresses": f"127.0.0.1:{c.ports['agent'][1]}, "
                                                       f"{name}:{c.ports['agent'][1]}"}})
        t0 = time.monotonic()
        c.agents[0].sighup()
        worst, late, samples, while_resolving = 0.0, [], 0, []
        while time.monotonic() - t0 < 3.0:
            t = time.monotonic()
            try:
                answer = c.agents[0].ask("primary", timeout=client_timeout_s)
            except OSError as e:
                answer = f"<{e!r}>"
            took = time.monotonic() - t
            worst = max(worst, took)
            samples += 1
            if answer != "up 100%" or took > client_timeout_s:
                late.append((round(t - t0, 3), round(took, 3), answer))
            if samples % 20 == 0:
                st = status(c, 0)["peers"]
                while_resolving.append((st["configured"], st["fresh"]))
            time.sleep(0.01)
        asked = [q for q in slow_dns.questions if q[1] == name]
        report(f"{samples} checks in 3 s after a reload whose peer name takes {slow_dns.delay_s} s to resolve: "
               f"slowest {1000 * worst:.0f} ms, {len(late)} late or not up; peers (configured, fresh) meanwhile: "
               f"{sorted(set(while_resolving))}; DNS asked {len(asked)} times")
        assert asked, "the name was never looked up (is the private resolv.conf in use?)"
        assert late == [], f"checks not answered up within {client_timeout_s} s: {late[:5]}"
        # until it resolves, the name is a peer that cannot be reached: configured, not fresh
        assert while_resolving and all(w == (2, 1) for w in while_resolving), while_resolving
        cl.wait_until(lambda: status(c, 0)["peers"]["fresh"] == 2, 10, desc="the named peer read once resolved")
        assert "does not resolve" not in c.agents[0].log()
    finally:
        c.close()


def test_name_that_does_not_resolve_is_logged_once_and_fences_no_one(slow_dns):
    c = cl.Cluster(replicas=1)
    try:
        c.pgcheckd_conf = {0: {"peers": {"addresses": f"127.0.0.1:{c.ports['agent'][1]}, "
                                                      f"nowhere.invalid:{c.ports['agent'][1]}"}}}
        c.start(haproxy=False)
        cl.wait_until(lambda: "peer nowhere.invalid" in c.agents[0].log(), 10, desc="the failed name logged")
        assert "does not resolve" in c.agents[0].log()
        assert c.agents[0].ask("primary") == "up 100%"
        cl.wait_until(lambda: status(c, 0)["peers"]["fresh"] == 1, 5, desc="the numeric peer read")
        assert status(c, 0)["peers"]["configured"] == 2
        time.sleep(1)
        assert c.agents[0].log().count("peer nowhere.invalid") == 1
    finally:
        c.close()
