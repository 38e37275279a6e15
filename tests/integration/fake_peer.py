"""A fake pgcheckd peer for the tests: what a frozen, lying or not-yet-upgraded peer could answer."""

import socket
import threading


class FakePeer(threading.Thread):
    """Listens on 127.0.0.1:port; answers each request with answer(request line) (None: close)."""

    def __init__(self, port, answer):
        super().__init__(daemon=True)
        self.answer = answer
        self.requests = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                buf = b""
                try:
                    while b"\n" not in buf and len(buf) < 512:
                        chunk = conn.recv(512)
                        if not chunk:
                            break
                        buf += chunk
                    line = buf.decode(errors="replace")
                    self.requests.append(line)
                    reply = self.answer(line)
                    if reply is not None:
                        conn.sendall(reply.encode())
                except OSError:
                    pass

    def stop(self):
        self.stopped.set()
        self.join(5)
        self.sock.close()
