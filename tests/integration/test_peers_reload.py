"""A reload that changes [peers] must not lift fencing: peers that stay keep what they said, new ones start
unknown, and an unknown peer never un-fences. Real PostgreSQL (a replica promoted while the old primary
keeps running) and real pgcheckd; between the old primary and its peers a small relay that holds every
answer back 300 ms, so that the first read after a reload takes that long.
"""

import json
import re
import socket
import subprocess
import threading
import time

import cluster as cl

HOLD_S = 0.3


class HoldingRelay:
    """A TCP relay on 127.0.0.1 to target_port that passes requests at once and holds answers back."""

    def __init__(self, target_port, hold_s):
        self.target_port, self.hold_s = target_port, hold_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _pipe(self, src, dst, hold):
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if hold:
                    time.sleep(self.hold_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _serve(self, client):
        client.settimeout(10)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError:
            client.close()
            return
        up = threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True)
        up.start()
        self._pipe(upstream, client, True)
        up.join(10)
        client.close()
        upstream.close()

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def status(c, i):
    r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(c.agents[i].ini), "ctl", "status"], capture_output=True,
                       timeout=10)
    return json.loads(r.stdout.decode())


def role_port_answer(port):
    """What a client on the role port gets: None when refused or nothing, else the bytes it read."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(0.5)
            s.sendall(b"primary\n")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data or None
    except OSError:
        return None


UP = re.compile(r"(^|\s)up(\s|$)")


def test_reload_adding_a_peer_keeps_a_fenced_primary_fenced(report):
    c = cl.Cluster(replicas=2)
    relays = []
    try:
        relays = [HoldingRelay(c.ports["agent"][1], HOLD_S), HoldingRelay(c.ports["agent"][2], HOLD_S)]
        role_port = cl.free_ports(1)[0]
        # node1 reads node2 through a relay that holds its answers back; a read takes >= 300 ms
        c.pgcheckd_conf = {0: {"peers": {"addresses": f"127.0.0.1:{relays[0].port}", "timeout_ms": "1500"},
                               "agent": {"primary_port": str(role_port)}}}
        c.start(haproxy=False)
        cl.wait_until(lambda: c.agents[0].ask("primary") == "up 100%", 10, desc="node1 a writable primary")
        cl.wait_until(lambda: role_port_answer(role_port) is not None, 5, desc="node1's primary port open")
        c.pg[1].promote()  # node1 keeps running: a split brain, node2 on timeline 2
        cl.wait_until(lambda: c.agents[0].ask("primary") == "down #fenced newer primary on timeline 2", 10,
                      interval=0.02, desc="node1 fenced")
        cl.wait_until(lambda: role_port_answer(role_port) is None, 5, desc="node1's primary port closed")

        # reload with node3 added (behind a relay too): from the SIGHUP on, probe every ~10 ms
        c.agents[0].write_conf({"peers": {"addresses": f"127.0.0.1:{relays[0].port}, "
                                                       f"127.0.0.1:{relays[1].port}"}})
        answers, role_answers = [], []
        t0 = time.monotonic()
        c.agents[0].sighup()
        read_again = None
        while time.monotonic() - t0 < 3.0:
            answers.append(c.agents[0].ask("primary"))
            if len(answers) % 5 == 0:
                role_answers.append(role_port_answer(role_port))
            if read_again is None and len(answers) % 10 == 0 and status(c, 0)["peers"]["fresh"] == 2:
                read_again = time.monotonic() - t0
            time.sleep(0.01)
        ups = [a for a in answers if UP.search(a)]
        role_ups = [a for a in role_answers if a is not None and UP.search(a.decode(errors="replace"))]
        report(f"{len(answers)} agent probes and {len(role_answers)} role-port probes in 3 s after the reload; "
               f"both peers read again after {read_again if read_again is None else round(read_again, 2)} s; "
               f"agent up: {len(ups)}, role port up: {len(role_ups)}")
        assert read_again is not None, "the added peer was never read"
        assert ups == [], f"node1 answered primary up after the reload: {ups[:3]} ({len(ups)} of {len(answers)})"
        assert role_ups == [], f"the primary port answered up after the reload: {role_ups[:3]}"
        assert all(a.startswith("down #") for a in answers), set(answers)
        fenced = sum(a == "down #fenced newer primary on timeline 2" for a in answers)
        assert fenced >= len(answers) // 2, set(answers)  # down for the fence, not for a slow sample
        assert "no longer fenced" not in c.agents[0].log()
    finally:
        for r in relays:
            r.close()
        c.close()
