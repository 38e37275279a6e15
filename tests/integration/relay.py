"""relay.py: a TCP relay on loopback that holds bytes back, for tests of late or slow traffic.

The kernel here has no netem, so a delay on a check path is made by a relay the test runs between
the two ends: every byte from the client reaches the server `up_delay_s` after it arrived, every byte
from the server reaches the client `down_delay_s` after it arrived. Threads only; `close()` (also by
`with`) stops the listener and every open connection.
"""

import socket
import threading
import time


class Relay:
    def __init__(self, target_port, up_delay_s=0.0, down_delay_s=0.0, host="127.0.0.1"):
        self.target = (host, target_port)
        self.up_delay_s = up_delay_s
        self.down_delay_s = down_delay_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._open = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _track(self, s):
        with self._lock:
            self._open.add(s)

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                server = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            self._track(client)
            self._track(server)
            for src, dst, delay in ((client, server, lambda: self.up_delay_s),
                                    (server, client, lambda: self.down_delay_s)):
                threading.Thread(target=self._pump, args=(src, dst, delay), daemon=True).start()

    def _pump(self, src, dst, delay):
        """Copy src to dst, each chunk `delay()` seconds after it arrived; pass a half-close on."""
        src.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            arrived = time.monotonic()
            wait = arrived + delay() - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    break
                dst.sendall(data)
            except OSError:
                break

    def close(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            for s in self._open:
                try:
                    s.close()
                except OSError:
                    pass
            self._open.clear()
        self._thread.join(2)
