"""fake_runtime_api.py: stand-ins for an HAProxy runtime API that a real HAProxy cannot play on demand.

- FrozenUnixApi: a unix socket whose listen backlog is full and that never accepts (an HAProxy that is
  frozen, or too busy to accept): a blocking connect() to it never returns.
- SlowApi: a TCP runtime API that answers every command after `delay` seconds, "show stat" with a
  configurable load (so a scale-out controller decides to act) and "show servers state" with free
  template slots; it records every command it was sent.
Mocks only for what cannot be real here; the answers are shaped like HAProxy 2.6.12's.
"""

import os
import socket
import threading
import time

STAT_HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
               "status,weight,act,bck\n")
STATE_HEADER = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
                "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
                "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
                "srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n")


class FrozenUnixApi:
    """A unix stream socket at path that never accepts, its backlog already full."""

    def __init__(self, path):
        self.path = str(path)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(0)
        self.fillers = []
        for _ in range(16):  # Linux queues backlog + 1 connections; fill until connect would block
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(self.path)
            except (BlockingIOError, InterruptedError):
                c.close()
                break
            self.fillers.append(c)
        assert self.fillers, "could not queue a connection on the frozen socket"

    def is_full(self):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(self.path)
        except (BlockingIOError, InterruptedError):
            return True
        finally:
            c.close()
        return False

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class SlowApi:
    """A TCP runtime API on 127.0.0.1 answering each command after delay seconds."""

    def __init__(self, delay=0.0, backends=("be_replicas", "be_other"), up_servers=2, sessions=10):
        self.delay = delay
        self.backends = backends
        self.up_servers = up_servers
        self.sessions = sessions
        self.commands = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def show_stat(self):
        out = STAT_HEADER
        for be in self.backends:
            for i in range(self.up_servers):
                out += f"{be},pg{i + 1},0,0,{self.sessions},0,,0,0,0,,0,,0,0,0,0,UP,100,1,0\n"
            out += f"{be},BACKEND,0,0,{self.sessions * self.up_servers},0,,0,0,0,0,0,,0,0,0,0,UP,200,2,0\n"
        return out + "\n"

    @staticmethod
    def show_servers_state(backend):
        out = STATE_HEADER
        for i in range(1, 4):
            out += f"2 {backend} {i} pg{i} 127.0.0.1 0 5 100 100 1 1 0 0 14 22 0 0 - 1 - 0 1 - - 1\n"
        return out + "\n"

    def answer(self, line):
        if line == "show stat":
            return self.show_stat()
        if line.startswith("show servers state "):
            return self.show_servers_state(line.split()[-1])
        return "\n"

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(5)
            buf = b""
            try:
                while b"\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
            except OSError:
                return
            line = buf.split(b"\n", 1)[0].decode(errors="replace")
            with self.lock:
                self.commands.append((time.monotonic(), line))
            time.sleep(self.delay)
            try:
                conn.sendall(self.answer(line).encode())
            except OSError:
                pass

    def sent(self):
        with self.lock:
            return list(self.commands)

    def close(self):
        self.closed = True
        self.sock.close()
