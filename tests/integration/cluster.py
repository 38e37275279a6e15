"""cluster.py: start and stop a small PostgreSQL cluster, pgcheckd and HAProxy on loopback.

A library for the integration tests (tests/integration/) and for scripts/demo; it does not depend on
pytest. Everything runs on 127.0.0.1, in a temporary directory, on free ports (or on fixed ports, as
the demo does):

- a PostgreSQL primary (initdb as the unprivileged `postgres` OS user) and N streaming replicas
  (pg_basebackup -R, one replication slot each);
- one pgcheckd per PostgreSQL node (`pgcheckd -c FILE`, in the foreground, its log in the temp dir);
- HAProxy running conf/haproxy.cfg exactly as shipped, with only its port numbers substituted.

Node numbering: PostgreSQL node index i (0-based) is HAProxy's server "node{i+1}"; index 0 is the
primary at start, the others are replicas.

Every wait is bounded. Cluster.close() (also run by `with`, and at interpreter exit) stops every process
this module started, by PID, and removes the temporary directory.
"""

import atexit
import csv
import io
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[2]


def _host_pg_bin():
    """The host's PostgreSQL: 15 (Debian 12) when installed, else the newest installed (17 on Debian 13)."""
    found = sorted((p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres") if p.parts[-3].isdigit()),
                   key=lambda p: int(p.parts[-2]))
    default = Path("/usr/lib/postgresql/15/bin")
    return default if default in found or not found else found[-1]


PG_BIN = Path(os.environ.get("PG_BIN") or _host_pg_bin())
PGCHECKD_BIN = os.environ.get("PGCHECKD_BIN", str(REPO / "build" / "pgcheckd"))
HAPROXY_BIN = os.environ.get("HAPROXY_BIN", shutil.which("haproxy") or "/usr/sbin/haproxy")
HAPROXY_CFG = REPO / "conf" / "haproxy.cfg"
PG_USER = "postgres"
# PG_BIN may be a folder of wrappers that switch to the postgres user themselves (tests/compat/matrix:
# `chroot --userspec` into another Debian release's root); then they are started as root.
PG_BIN_SWITCHES_USER = bool(os.environ.get("PG_BIN_SWITCHES_USER"))

# The ports conf/haproxy.cfg (and the README) use; the demo runs on exactly these.
DEMO_PORTS = {
    "write": 15000,
    "read": 15001,
    "api": 15002,
    "pg": [15432, 15433, 15434],
    "agent": [15480, 15481, 15482],
}

# pgcheckd settings every instance started here gets unless overridden.
PGCHECKD_DEFAULTS = {
    "agent": {"shutdown_drain_ms": "0"},
    "log": {"level": "info"},
}


class ClusterError(RuntimeError):
    pass


# what AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer write when they find something
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: \w+Sanitizer|: runtime error: ")


# ---------------------------------------------------------------------------------------------------
# small helpers


def wait_until(fn, timeout, interval=0.05, desc=None):
    """Call fn() until it returns something truthy; return that. Raise TimeoutError after timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - a failing probe is "not yet"
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {desc or fn}; last value: {last!r}")
        time.sleep(interval)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (all bound at once, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def port_in_use(port, host="127.0.0.1"):
    """True when port cannot be bound on host (something listens there). SO_REUSEADDR, as the servers
    use, so that connections of an earlier run in TIME_WAIT do not count."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError:
        return True
    finally:
        s.close()
    return False


def port_accepts(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def agent_request(port, data=b"", timeout=2.0, host="127.0.0.1", shut_wr=False):
    """Connect to an agent port, send data (bytes or str), read the reply until newline or close.

    Returns the reply bytes (with its newline, if any). shut_wr closes our sending side after data
    (the request then ends at EOF). Raises socket.timeout if nothing complete came within timeout.
    """
    if isinstance(data, str):
        data = data.encode()
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no complete reply within {timeout}s (got {buf!r})")
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


def parse_pct(reply):
    """'up 73%' (or '73% up', the answer given without a whole request line) -> 73; anything else
    (down, no percentage) -> None."""
    m = re.match(r"^(?:up (\d+)%|(\d+)% up)$", reply.strip())
    return int(m.group(1) or m.group(2)) if m else None


def substitute_ports(text, mapping):
    """Replace each whole number that is a key of mapping (int -> int) by its value."""
    if not mapping:
        return text
    alternatives = "|".join(str(k) for k in sorted(mapping, key=lambda k: -len(str(k))))
    pattern = re.compile(r"(?<![0-9])(" + alternatives + r")(?![0-9])")
    return pattern.sub(lambda m: str(mapping[int(m.group(1))]), text)


def _children_map():
    """ppid -> [pid] for every process, from /proc."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command may contain spaces and parentheses: fields start after the last ')'
        fields = stat[stat.rindex(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def descendants(pid):
    """Every descendant of pid (children, grandchildren, ...), from /proc."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rindex(")") + 2:].split()[0]
    return state != "Z"


def _pg_ids():
    pw = pwd.getpwnam(PG_USER)
    return pw.pw_uid, pw.pw_gid


def _pg_popen_kw():
    """Popen arguments that run a command as the postgres OS user when we are root (PostgreSQL
    refuses to run as root)."""
    if os.geteuid() != 0 or PG_BIN_SWITCHES_USER:
        return {}
    uid, gid = _pg_ids()
    return {"user": uid, "group": gid, "extra_groups": []}


LIBFAKETIME = os.environ.get("LIBFAKETIME", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def faketime_env(offset):
    """Environment that shifts a process's clocks by offset ("-60s", "+60s") with Debian's libfaketime
    (package libfaketime). Monotonic clocks move by the same constant, which changes no interval. See
    PgNode.settle_faketime for a walreceiver that does not follow."""
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": offset}


def _clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    return env


def _run(cmd, timeout=60, check=True, as_pg=False):
    cmd = [str(c) for c in cmd]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, env=_clean_env(), start_new_session=True,
                       **(_pg_popen_kw() if as_pg else {}))
    out = r.stdout.decode(errors="replace")
    if check and r.returncode != 0:
        raise ClusterError(f"command failed ({r.returncode}): {' '.join(cmd)}\n{out}")
    return r.returncode, out


def _tail(path, n=200):
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        return f"(cannot read {path}: {e})\n"
    return "".join(lines[-n:])


# ---------------------------------------------------------------------------------------------------
# PostgreSQL


class PgNode:
    """One PostgreSQL server (primary or streaming replica), run by the postgres OS user."""

    def __init__(self, cluster, index, port):
        self.cluster = cluster
        self.index = index
        self.name = f"node{index + 1}"
        self.port = port
        self.dir = cluster.tmp / f"pg{index + 1}"
        self.datadir = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.logfile = self.dir / "postgresql.log"
        self.frozen = []  # pids stopped by freeze()
        self.proc = None  # the postmaster (our child)
        self.env = dict(cluster.pg_env.get(index, {}))  # extra environment (e.g. libfaketime's)
        uid, gid = _pg_ids()
        self.dir.mkdir()
        self.sockdir.mkdir()
        os.chown(self.dir, uid, gid)
        os.chown(self.sockdir, uid, gid)

    def __repr__(self):
        return f"<PgNode {self.name} port={self.port}>"

    # -- creation

    def _settings(self):
        return (
            "\n# --- cluster.py ---\n"
            f"listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.sockdir}'\n"
            f"cluster_name = '{self.name}'\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "wal_level = replica\n"
            "max_wal_senders = 10\n"
            "max_replication_slots = 10\n"
            "hot_standby = on\n"
            "max_wal_size = 64MB\n"
            "min_wal_size = 32MB\n"
            "checkpoint_timeout = 30s\n"
            "shared_buffers = 16MB\n"
            "max_connections = 50\n"
            "wal_receiver_status_interval = 1s\n"
            "log_line_prefix = '%m [%p] %a '\n"
            "log_min_messages = warning\n"
        )

    def initdb(self):
        _run([PG_BIN / "initdb", "-D", self.datadir, "-U", PG_USER, "--auth=trust", "-E", "UTF8",
              "--locale=C", "--no-sync", "--no-instructions"], timeout=120, as_pg=True)
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write(self._settings())
        with open(self.datadir / "pg_hba.conf", "w") as f:
            f.write(
                "# cluster.py: trust on loopback only (test clusters)\n"
                "local all all trust\n"
                "local replication all trust\n"
                "host all all 127.0.0.1/32 trust\n"
                "host replication all 127.0.0.1/32 trust\n"
            )

    def basebackup_from(self, primary):
        _run([PG_BIN / "pg_basebackup", "-D", self.datadir, "-h", primary.sockdir, "-p", primary.port,
              "-U", PG_USER, "-R", "-C", "-S", self.name, "-X", "stream", "-c", "fast", "--no-sync"],
             timeout=120, as_pg=True)
        # The copied postgresql.conf carries the primary's port and socket; later lines win.
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write(self._settings())

    # -- process control

    @property
    def pid(self):
        """The postmaster's PID, or None when it is not running."""
        return self.proc.pid if self.running() else None

    def start(self, timeout=60):
        """Start the postmaster as our own child process (so it is reaped, never left a zombie)."""
        if self.running():
            raise ClusterError(f"{self.name} is already running")
        logf = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen([str(PG_BIN / "postgres"), "-D", str(self.datadir)],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         env={**_clean_env(), **self.env}, start_new_session=True,
                                         **_pg_popen_kw())
        finally:
            logf.close()
        self.cluster._procs.append(self.proc)

        def ready():
            if self.proc.poll() is not None:
                raise ClusterError(f"{self.name} exited with {self.proc.returncode}:\n{self.log(30)}")
            self.sql1("SELECT 1", timeout=2)
            return True
        try:
            wait_until(ready, timeout, desc=f"{self.name} to accept connections")
        except TimeoutError as e:
            raise ClusterError(f"{e}\n{self.log(30)}") from None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, mode="fast", timeout=60):
        """Shut down (smart/fast/immediate = SIGTERM/SIGINT/SIGQUIT) and wait for the postmaster to exit."""
        self.thaw()
        if not self.running():
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{self.name} did not stop within {timeout}s ({mode})") from None

    def restart(self, mode="fast", timeout=60):
        self.stop(mode=mode, timeout=timeout)
        self.start(timeout=timeout)

    def kill9(self, timeout=15):
        """SIGKILL the postmaster; wait until it and its children are gone."""
        self.thaw()
        pid = self.pid
        if not pid:
            return
        procs = descendants(pid)
        os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout)
        wait_until(lambda: not any(pid_alive(p) for p in procs), timeout, desc=f"{self.name} children to exit")

    def promote(self, timeout=60):
        _run([PG_BIN / "pg_ctl", "-D", self.datadir, "-w", "-t", int(timeout), "promote"],
             timeout=timeout + 10, as_pg=True)

    def processes(self):
        pid = self.pid
        return [pid] + descendants(pid) if pid else []

    def freeze(self):
        """SIGSTOP the postmaster, then all its children (so no new child appears meanwhile)."""
        pid = self.pid
        if not pid:
            raise ClusterError(f"{self.name} is not running")
        os.kill(pid, signal.SIGSTOP)
        self.frozen = [pid]
        for _ in range(3):  # catch children forked just before the postmaster stopped
            for c in descendants(pid):
                if c not in self.frozen:
                    try:
                        os.kill(c, signal.SIGSTOP)
                        self.frozen.append(c)
                    except ProcessLookupError:
                        pass
        return list(self.frozen)

    def thaw(self):
        for p in reversed(self.frozen):
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    # -- SQL

    def connect(self, timeout=5, **kw):
        params = dict(host=str(self.sockdir), port=self.port, user=PG_USER, dbname="postgres",
                      connect_timeout=max(2, int(timeout)), application_name="cluster.py")
        params.update(kw)
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn

    def sql(self, query, args=None, timeout=10):
        """Run one statement (autocommit); return all rows, or None for a statement without rows."""
        conn = self.connect(timeout=timeout, options=f"-c statement_timeout={int(timeout * 1000)}")
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def sql1(self, query, args=None, timeout=10):
        """The first column of the first row."""
        rows = self.sql(query, args, timeout=timeout)
        return rows[0][0] if rows else None

    def in_recovery(self):
        return self.sql1("SELECT pg_is_in_recovery()")

    def pause_replay(self):
        self.sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self):
        self.sql("SELECT pg_wal_replay_resume()")

    def follow(self, primary):
        """Point this replica at another primary (after a promotion): slot on the new primary, reload."""
        primary.sql("SELECT pg_create_physical_replication_slot(%s) WHERE NOT EXISTS "
                    "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (self.name, self.name))
        conninfo = f"host={primary.sockdir} port={primary.port} user={PG_USER} application_name={self.name}"
        self.sql("ALTER SYSTEM SET primary_conninfo = %s", (conninfo,))
        self.sql("ALTER SYSTEM SET primary_slot_name = %s", (self.name,))
        self.sql("SELECT pg_reload_conf()")

    def settle_faketime(self, timeout=120):
        """Make sure this replica's WAL receiver runs on the shifted clock. With libfaketime 0.9.10 a
        walreceiver was often seen on the real clock (its receipt times equal to the primary's send
        times, its backend_start off the backends' clock by the offset) while the backends, pgcheckd's
        session among them, were shifted: sometimes only the postmaster's first walreceiver, sometimes
        every one it started. A receiver that started on another clock than the backends' is restarted
        (the startup process starts a new one after wal_retrieve_retry_interval, 5 s); after two such
        restarts, the whole postmaster is."""
        tries = {"receiver": 0}

        def consistent():
            row = self.sql("SELECT w.pid, extract(epoch FROM clock_timestamp() - a.backend_start) "
                           "FROM pg_stat_wal_receiver w JOIN pg_stat_activity a USING (pid) "
                           "WHERE w.status = 'streaming'")
            if not row:
                return False  # (re)starting: wait
            pid, age = row[0]
            if -5 < float(age) < 30:  # this young a receiver started on the backends' clock
                return True
            if tries["receiver"] >= 2:
                tries["receiver"] = 0
                self.restart()
            else:
                tries["receiver"] += 1
                os.kill(pid, signal.SIGTERM)
                time.sleep(1)
            return False
        wait_until(consistent, timeout, interval=0.5, desc=f"{self.name}'s walreceiver on the shifted clock")

    def streaming(self):
        """True when this replica's WAL receiver is streaming."""
        return self.sql1("SELECT status FROM pg_stat_wal_receiver") == "streaming"

    def log(self, n=100):
        return _tail(self.logfile, n)


# ---------------------------------------------------------------------------------------------------
# pgcheckd


def render_ini(conf):
    """{section: {key: value}} -> ini text (sections and keys in the given order)."""
    out = []
    for section, keys in conf.items():
        out.append(f"[{section}]")
        for k, v in keys.items():
            out.append(f"{k} = {v}")
        out.append("")
    return "\n".join(out)


def merge_conf(*confs):
    out = {}
    for c in confs:
        for section, keys in (c or {}).items():
            out.setdefault(section, {}).update({k: str(v) for k, v in keys.items()})
    return out


class Pgcheckd:
    """One pgcheckd process, `pgcheckd -c FILE` in the foreground, stderr captured to a log file."""

    def __init__(self, cluster, pg, port, conf=None, name=None):
        self.cluster = cluster
        self.pg = pg
        self.port = port
        self.name = name or f"pgcheckd-{pg.name}"
        self.ini = cluster.tmp / f"{self.name}.ini"
        self.logfile = cluster.tmp / f"{self.name}.log"
        self.proc = None
        self.conf = merge_conf(self.base_conf(), PGCHECKD_DEFAULTS, conf)
        if self.conf.get("pg", {}).get("data_directory") == "@datadir":  # this node's own, known only here
            self.conf["pg"]["data_directory"] = str(pg.datadir)
        self.write_conf()

    def __repr__(self):
        return f"<Pgcheckd {self.name} port={self.port}>"

    def base_conf(self):
        return {
            "agent": {"listen": f"127.0.0.1:{self.port}"},
            "pg": {"conninfo": f"host={self.pg.sockdir} port={self.pg.port} dbname=postgres user={PG_USER}"},
            # each instance on this host needs its own admin socket
            "admin": {"socket": str(self.cluster.tmp / f"{self.name}.sock")},
        }

    def write_conf(self, conf=None, text=None):
        """Write the ini file: from text as is, or from conf merged over the current settings."""
        if text is None:
            if conf is not None:
                self.conf = merge_conf(self.conf, conf)
            text = render_ini(self.conf)
        tmp = self.ini.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.ini)
        return self.ini

    def start(self, wait=True, timeout=10):
        if self.running():
            raise ClusterError(f"{self.name} already running")
        logf = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen([PGCHECKD_BIN, "-c", str(self.ini)], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            logf.close()
        self.cluster._procs.append(self.proc)
        if self not in self.cluster._pgcheckds:
            self.cluster._pgcheckds.append(self)
        if wait:
            self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout=10):
        def ready():
            if self.proc.poll() is not None:
                raise ClusterError(f"{self.name} exited with {self.proc.returncode}; log:\n{self.log()}")
            return port_accepts(self.port)
        try:
            wait_until(ready, timeout, desc=f"{self.name} to listen on {self.port}")
        except TimeoutError as e:
            raise ClusterError(f"{e}; log:\n{self.log()}") from None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if not self.running():
            raise ClusterError(f"{self.name} is not running (exit status {self.proc and self.proc.returncode})")
        os.kill(self.proc.pid, sig)

    def sighup(self):
        self.signal(signal.SIGHUP)

    def sigterm(self):
        self.signal(signal.SIGTERM)

    def kill(self):
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait_exit(self, timeout=10):
        """Wait for the process to exit; return its exit status (raises subprocess.TimeoutExpired)."""
        return self.proc.wait(timeout)

    def stop(self, timeout=5):
        """SIGTERM, then SIGKILL if it has not exited within timeout. Returns the exit status."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def request(self, data=b"", timeout=2.0, **kw):
        """Send one request; return the raw reply bytes."""
        return agent_request(self.port, data, timeout=timeout, **kw)

    def ask(self, req="", timeout=2.0):
        """Send req (a request word; '\\n' is appended unless req is empty); return the reply line without
        its newline. A reply that is not one complete line (HAProxy would ignore it) comes back as
        '<incomplete reply ...>', so that no comparison with a real answer passes."""
        data = (req + "\n") if req else ""
        raw = self.request(data, timeout=timeout)
        if not raw.endswith(b"\n") or raw.count(b"\n") != 1:
            return f"<incomplete reply {raw!r}>"
        return raw[:-1].decode(errors="replace")

    def log(self, n=None):
        if n is None:
            try:
                return self.logfile.read_text(errors="replace")
            except OSError as e:
                return f"(cannot read {self.logfile}: {e})"
        return _tail(self.logfile, n)

    def check_config(self, path=None, timeout=10):
        """`pgcheckd -t -c FILE`: return (exit status, stdout, stderr)."""
        r = subprocess.run([PGCHECKD_BIN, "-t", "-c", str(path or self.ini)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def pgcheckd_check_config(path, timeout=10):
    """`pgcheckd -t -c FILE` on any file: (exit status, stdout, stderr)."""
    r = subprocess.run([PGCHECKD_BIN, "-t", "-c", str(path)], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------------------------------
# HAProxy


class Haproxy:
    """HAProxy running conf/haproxy.cfg with its demo ports replaced by the cluster's."""

    def __init__(self, cluster, mapping, source=HAPROXY_CFG, name="haproxy", edit=None):
        """edit: a function of the configuration's text, applied after the ports are substituted."""
        self.cluster = cluster
        self.source = Path(source)
        self.cfg = cluster.tmp / f"{name}.cfg"
        self.logfile = cluster.tmp / f"{name}.log"
        self.mapping = mapping
        self.text = substitute_ports(self.source.read_text(), mapping)
        if edit is not None:
            self.text = edit(self.text)
        self.cfg.write_text(self.text)
        self.api_port = mapping[DEMO_PORTS["api"]]
        self.write_port = mapping[DEMO_PORTS["write"]]
        self.read_port = mapping[DEMO_PORTS["read"]]
        self.proc = None

    def check_config(self):
        return _run([HAPROXY_BIN, "-c", "-f", self.cfg], check=False, timeout=30)

    def start(self, timeout=10):
        rc, out = self.check_config()
        if rc != 0:
            raise ClusterError(f"haproxy -c rejected {self.cfg}:\n{out}")
        logf = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", str(self.cfg)], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            logf.close()
        self.cluster._procs.append(self.proc)

        def ready():
            if self.proc.poll() is not None:
                raise ClusterError(f"haproxy exited with {self.proc.returncode}:\n{self.log()}")
            return port_accepts(self.api_port)
        wait_until(ready, timeout, desc="haproxy's runtime API")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5):
        if not self.running():
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def api(self, command, timeout=3.0):
        """One runtime API command over TCP; the whole answer as text."""
        with socket.create_connection(("127.0.0.1", self.api_port), timeout=timeout) as s:
            s.sendall(command.encode() + b"\n")
            chunks = []
            deadline = time.monotonic() + timeout
            while True:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def show_stat(self):
        """`show stat` as a list of dicts (CSV columns: pxname, svname, status, weight, ...)."""
        text = self.api("show stat")
        if not text.startswith("# "):
            raise ClusterError(f"unexpected 'show stat' answer: {text[:200]!r}")
        rows = list(csv.reader(io.StringIO(text[2:])))
        header = rows[0]
        return [dict(zip(header, r)) for r in rows[1:] if r]

    def show_servers_state(self):
        """`show servers state` as a list of dicts (be_name, srv_name, srv_op_state, srv_uweight, ...)."""
        lines = [l for l in self.api("show servers state").splitlines() if l.strip()]
        header_line = next((l for l in lines if l.startswith("# ")), None)
        if header_line is None:
            raise ClusterError(f"unexpected 'show servers state' answer: {lines[:3]!r}")
        header = header_line[2:].split()
        rows = []
        for l in lines[lines.index(header_line) + 1:]:
            rows.append(dict(zip(header, l.split())))
        return rows

    def servers(self, backend):
        """{server name: show-stat row} for one backend."""
        return {r["svname"]: r for r in self.show_stat()
                if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}

    def states(self, backend):
        """{server name: (status, weight)}, e.g. {'node1': ('UP', 100), 'node2': ('DOWN', 100)}."""
        return {name: (r["status"], int(r["weight"] or 0)) for name, r in self.servers(backend).items()}

    def status(self, backend, server):
        return self.servers(backend)[server]["status"]

    def weight(self, backend, server):
        return int(self.servers(backend)[server]["weight"] or 0)

    def log(self, n=200):
        return _tail(self.logfile, n)


# ---------------------------------------------------------------------------------------------------
# the cluster

_live_clusters = set()
_live_lock = threading.Lock()


def _close_all():
    with _live_lock:
        clusters = list(_live_clusters)
    for c in clusters:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_close_all)


class Cluster:
    """A primary + N replicas, a pgcheckd per node and an HAProxy in front, on 127.0.0.1.

    ports: None for free ports, or a dict shaped like DEMO_PORTS (the demo passes DEMO_PORTS).
    pgcheckd_conf: {node index: {section: {key: value}}} per node; pgcheckd_common applies to all.
    pg_env: {node index: {VAR: value}}, environment added for that node's postmaster (faketime_env()).
    """

    def __init__(self, replicas=2, ports=None, pgcheckd_conf=None, pgcheckd_common=None, haproxy_cfg=HAPROXY_CFG,
                 keep_tmp=None, say=None, pg_env=None):
        self.n = 1 + replicas
        if ports is None:
            free = free_ports(3 + 2 * self.n)
            ports = {"write": free[0], "read": free[1], "api": free[2],
                     "pg": free[3:3 + self.n], "agent": free[3 + self.n:3 + 2 * self.n]}
        self.ports = ports
        self.pgcheckd_conf = pgcheckd_conf or {}
        self.pgcheckd_common = pgcheckd_common or {}
        self.pg_env = pg_env or {}
        self.haproxy_cfg = haproxy_cfg
        self.keep_tmp = bool(os.environ.get("CLUSTER_KEEP_TMP")) if keep_tmp is None else keep_tmp
        self.say = say or (lambda msg: None)
        self.tmp = Path(tempfile.mkdtemp(prefix="pgcheckd-it-"))
        os.chmod(self.tmp, 0o755)
        self._procs = []        # Popen objects we started (postmasters, pgcheckd, haproxy)
        self._pgcheckds = []    # every Pgcheckd started, stopped with SIGTERM at close
        self.pg = []
        self.agents = []
        self.haproxy = None
        self.closed = False
        with _live_lock:
            _live_clusters.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- building

    def start(self, pgcheckd=True, haproxy=True, wait=True, timeout=30):
        try:
            self._start(pgcheckd, haproxy, wait, timeout)
        except Exception as e:
            logs = self.logs()
            self.close()
            raise ClusterError(f"cluster start failed: {e}\n{logs}") from e
        except BaseException:
            self.close()
            raise
        return self

    def _start(self, pgcheckd, haproxy, wait, timeout):
        t0 = time.monotonic()
        self.pg = [PgNode(self, i, self.ports["pg"][i]) for i in range(self.n)]
        primary = self.pg[0]
        self.say(f"initdb {primary.name} (port {primary.port})")
        primary.initdb()
        primary.start()
        for r in self.pg[1:]:
            self.say(f"pg_basebackup {r.name} (port {r.port}) from {primary.name}")
            r.basebackup_from(primary)
            r.start()
        if wait and self.n > 1:
            self.wait_streaming(timeout=timeout)
            for r in self.pg[1:]:
                if "FAKETIME" in r.env:
                    r.settle_faketime(timeout=4 * timeout)
        for i, node in enumerate(self.pg):
            conf = merge_conf(self.pgcheckd_common, self.pgcheckd_conf.get(i))
            self.agents.append(Pgcheckd(self, node, self.ports["agent"][i], conf))
        if pgcheckd:
            for a in self.agents:
                self.say(f"start pgcheckd for {a.pg.name} (port {a.port})")
                a.start()
            if wait:
                for a in self.agents:
                    wait_until(lambda a=a: a.ask("health") == "up 100%", timeout,
                               desc=f"{a.name} to have its first sample ('health' answered 'up 100%')")
        if haproxy:
            mapping = {DEMO_PORTS["write"]: self.ports["write"], DEMO_PORTS["read"]: self.ports["read"],
                       DEMO_PORTS["api"]: self.ports["api"]}
            for i in range(len(DEMO_PORTS["pg"])):
                # haproxy.cfg has three nodes; a smaller cluster leaves the others on dead ports
                mapping[DEMO_PORTS["pg"][i]] = self.ports["pg"][i] if i < self.n else free_ports(1)[0]
                mapping[DEMO_PORTS["agent"][i]] = self.ports["agent"][i] if i < self.n else free_ports(1)[0]
            self.haproxy = Haproxy(self, mapping, self.haproxy_cfg)
            self.say(f"start haproxy (write {self.ports['write']}, read {self.ports['read']}, "
                     f"runtime API {self.ports['api']})")
            self.haproxy.start()
        if wait and pgcheckd and haproxy:
            self.wait_routing(primary=0, replicas=list(range(1, self.n)), timeout=timeout)
        self.say(f"cluster ready in {time.monotonic() - t0:.1f}s")

    def extra_haproxy(self, source=HAPROXY_CFG, name="haproxy-extra", edit=None):
        """Another HAProxy beside self.haproxy, on source with frontend and API ports of its own (started;
        stopped with the cluster, or by its stop())."""
        write, read, api = free_ports(3)
        mapping = {DEMO_PORTS["write"]: write, DEMO_PORTS["read"]: read, DEMO_PORTS["api"]: api}
        for i in range(len(DEMO_PORTS["pg"])):
            mapping[DEMO_PORTS["pg"][i]] = self.ports["pg"][i] if i < self.n else free_ports(1)[0]
            mapping[DEMO_PORTS["agent"][i]] = self.ports["agent"][i] if i < self.n else free_ports(1)[0]
        return Haproxy(self, mapping, source, name=name, edit=edit).start()

    # -- waiting

    def wait_streaming(self, replicas=None, timeout=30):
        replicas = [self.pg[i] for i in (replicas if replicas is not None else range(1, self.n))]
        for r in replicas:
            wait_until(r.streaming, timeout, desc=f"{r.name} to stream")

    def routing(self):
        """{'be_primary': {...states...}, 'be_replicas': {...}}."""
        return {be: self.haproxy.states(be) for be in ("be_primary", "be_replicas")}

    def wait_routing(self, primary, replicas, timeout=15):
        """Wait until be_primary has exactly `primary` UP and be_replicas exactly `replicas` UP."""
        want_p = {self.name(primary)} if primary is not None else set()
        want_r = {self.name(i) for i in replicas}

        def ok():
            st = self.routing()
            up_p = {s for s, (status, _) in st["be_primary"].items() if status.startswith("UP")}
            up_r = {s for s, (status, _) in st["be_replicas"].items() if status.startswith("UP")}
            return (up_p == want_p and up_r == want_r) and st
        return wait_until(ok, timeout, interval=0.05,
                          desc=f"be_primary UP = {sorted(want_p)} and be_replicas UP = {sorted(want_r)}")

    def wait_status(self, backend, index, pred, timeout=10, desc=None):
        """Wait until pred(status string) holds for node `index` in backend; return the status."""
        server = self.name(index)

        def ok():
            s = self.haproxy.status(backend, server)
            return s if pred(s) else None
        return wait_until(ok, timeout, desc=desc or f"{backend}/{server} status")

    # -- naming

    @staticmethod
    def name(index):
        return f"node{index + 1}"

    def node_of_port(self, port):
        """HAProxy server name of the PostgreSQL node listening on port."""
        for node in self.pg:
            if node.port == port:
                return node.name
        return f"port {port}"

    # -- traffic through HAProxy

    def connect_frontend(self, which, timeout=3, **kw):
        port = self.ports[which]
        params = dict(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", connect_timeout=timeout,
                      application_name="cluster.py")
        params.update(kw)
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn

    def through(self, which, query="SELECT inet_server_port(), pg_is_in_recovery()", args=None, timeout=3):
        """Run one statement over a new connection through frontend 'write' or 'read'; return its rows."""
        conn = self.connect_frontend(which, timeout=timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def where(self, which, timeout=3):
        """(node name, in_recovery) of the node a new connection through the frontend reaches."""
        port, rec = self.through(which, timeout=timeout)[0]
        return self.node_of_port(port), rec

    def spread(self, which, n, timeout=3):
        """Open n connections through a frontend; {node name: count} (failures under 'error')."""
        counts = {}
        for _ in range(n):
            try:
                node, _rec = self.where(which, timeout=timeout)
            except psycopg2.Error:
                node = "error"
            counts[node] = counts.get(node, 0) + 1
        return counts

    # -- diagnostics

    def logs(self, n=80):
        """The tail of every log: pgcheckd, HAProxy, PostgreSQL."""
        parts = []
        for a in self.agents:
            parts.append(f"----- {a.name} ({a.logfile}) -----\n{a.log(n)}")
        if self.haproxy:
            parts.append(f"----- haproxy ({self.haproxy.logfile}) -----\n{self.haproxy.log(n)}")
            try:
                parts.append("----- haproxy show stat -----\n" + "\n".join(
                    f"{be}: {st}" for be, st in self.routing().items()))
            except Exception as e:  # noqa: BLE001
                parts.append(f"----- haproxy show stat: {e} -----")
        for p in self.pg:
            parts.append(f"----- postgresql {p.name} ({p.logfile}) -----\n{p.log(30)}")
        return "\n".join(parts)

    # -- teardown

    def close(self):
        """Stop everything this cluster started (by PID) and remove its temporary directory."""
        if self.closed:
            return
        self.closed = True
        # every pgcheckd ends as the service manager ends it (SIGTERM; drain 0 here), so the sanitizer
        # build's LeakSanitizer runs at exit; what any sanitizer wrote is a failure of the test
        findings = []
        for a in self._pgcheckds:
            if a.running():
                try:
                    a.stop(timeout=10)
                except Exception:  # noqa: BLE001
                    pass
            try:
                text = a.log()
            except Exception:  # noqa: BLE001
                continue
            m = SANITIZER_RE.search(text)
            if m:
                findings.append(f"----- {a.name} ({a.logfile}) -----\n{text[max(0, m.start() - 200):m.start() + 4000]}")
        if self.haproxy:
            try:
                self.haproxy.stop(timeout=3)
            except Exception:  # noqa: BLE001
                pass
        for a in self.agents:
            if a.running():
                try:
                    os.kill(a.proc.pid, signal.SIGKILL)
                    a.proc.wait(5)
                except Exception:  # noqa: BLE001
                    pass
        for p in self._procs:
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(5)
                except Exception:  # noqa: BLE001
                    pass
        for node in self.pg:
            node.thaw()
            if node.running():
                try:
                    node.stop(mode="immediate", timeout=10)
                except Exception:  # noqa: BLE001
                    pass
        for p in self._procs:  # postmasters that did not stop, and anything else left
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(5)
                except Exception:  # noqa: BLE001
                    pass
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        with _live_lock:
            _live_clusters.discard(self)
        if findings:
            raise ClusterError("a sanitizer reported an error in pgcheckd:\n" + "\n".join(findings))


def patroni_yml(scope, namespace, name, rest_port, etcd_port, pg_port, node_dir, ttl=20, retry_timeout=5,
                max_connections=50):
    """A Patroni 3 member's configuration on loopback: its REST API, etcd v3, its PostgreSQL (trust
    authentication, the socket in node_dir, fsync off) with loop_wait 1 and the given ttl/retry_timeout."""
    d = Path(node_dir)
    return f"""scope: {scope}
namespace: {namespace}
name: {name}
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:{rest_port}
  connect_address: 127.0.0.1:{rest_port}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: 1
    retry_timeout: {retry_timeout}
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: {max_connections}
        wal_level: replica
        hot_standby: "on"
  initdb:
    - encoding: UTF8
    - locale: C
    - auth: trust
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {d / 'data'}
  bin_dir: {PG_BIN}
  pgpass: {d / 'pgpass'}
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: '{d}'
    fsync: "off"
    shared_buffers: 16MB
  pg_hba:
    - local all all trust
    - local replication all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
"""
