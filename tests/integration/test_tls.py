"""TLS on the agent port and the HTTP port, with real HAProxy 2.6, real PostgreSQL and certificates made
here with the openssl CLI.

- HAProxy running conf/haproxy-tls.cfg (tcp-check connect ssl on the write backend, httpchk with
  check-ssl on the read backend, both verify required + crt) routes writes and reads as before.
- A wrong CA on HAProxy's side, an expired certificate on pgcheckd's, no client certificate where one is
  required: the check fails closed (DOWN) and pgcheckd logs why, once.
- A plain-text client on a TLS port gets nothing useful and stalls no one; half a ClientHello is cut at
  client_timeout_ms while checks are answered.
- SIGHUP swaps the certificate (the new one is served) with checks answered throughout; a key file
  that group or others may read is refused at start and at reload.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest

import cluster as cl

TLS_CFG = cl.REPO / "conf" / "haproxy-tls.cfg"
# the HTTP ports of node1..3 and the certificate paths in conf/haproxy-tls.cfg
DEMO_HTTP_PORTS = [15580, 15581, 15582]
DEMO_CA = "/etc/haproxy/pgcheckd-ca.pem"
DEMO_CLIENT = "/etc/haproxy/pgcheckd-client.pem"
FAILURE_RE = re.compile(r"TLS handshake on port \d+ failed \(client [^)]*\): (.*); closed")

CA_CNF = """[ca]
default_ca = d
[d]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
"""


class Pki:
    """CAs and certificates made with the openssl CLI in a directory of their own."""

    def __init__(self, root):
        self.dir = Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "ca.cnf").write_text(CA_CNF)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("01\n")

    def _run(self, *args):
        r = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    def ca(self, name):
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=pgcheckd test {name}",
                  "-days", "30")
        return self.dir / f"{name}.pem"

    def cert(self, name, ca="ca", cn="localhost", san="DNS:localhost,IP:127.0.0.1", dates=None):
        """A certificate signed by ca: (cert path, key path); dates = (start, end) as YYYYMMDDHHMMSSZ."""
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                  f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}")
        when = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "30"]
        self._run("ca", "-batch", "-config", "ca.cnf", "-cert", f"{ca}.pem", "-keyfile", f"{ca}.key", "-in",
                  f"{name}.csr", "-out", f"{name}.pem", "-notext", *when)
        os.chmod(self.dir / f"{name}.key", 0o600)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"

    def bundle(self, name):
        """cert + key in one file, as HAProxy's crt wants it."""
        out = self.dir / f"{name}-bundle.pem"
        out.write_text((self.dir / f"{name}.pem").read_text() + (self.dir / f"{name}.key").read_text())
        os.chmod(out, 0o600)
        return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.ca("ca")
    p.ca("other")
    p.cert("server")
    p.cert("server2", cn="pgcheckd second")
    p.cert("expired", dates=("20200101000000Z", "20200102000000Z"))
    p.cert("client", cn="haproxy", san="DNS:haproxy")
    p.bundle("client")
    return p


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def file_fingerprint(path):
    return fingerprint(ssl.PEM_cert_to_DER_cert(Path(path).read_text()))


def tls_context(pki, client_cert=True):
    ctx = ssl.create_default_context(cafile=str(pki.dir / "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(str(pki.dir / "client.pem"), str(pki.dir / "client.key"))
    return ctx


def tls_request(port, data, ctx, timeout=3.0, want_cert=False):
    """One request over TLS; the reply bytes until the close (and the server certificate's SHA-256)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(data)
            buf = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ssl.SSLZeroReturnError:
                    break
                if not chunk:
                    break
                buf += chunk
    return (buf, fingerprint(der)) if want_cert else buf


def tls_node_conf(pki, http_port, cert="server", verify="required", timeout_ms=None, wait_ms=None):
    conf = {"agent": {"http_listen": f"127.0.0.1:{http_port}"},
            "tls": {"cert_file": str(pki.dir / f"{cert}.pem"), "key_file": str(pki.dir / f"{cert}.key"),
                    "ca_file": str(pki.dir / "ca.pem"), "verify_client": verify, "agent": "true",
                    "http": "true"}}
    if timeout_ms is not None:
        conf["agent"]["client_timeout_ms"] = str(timeout_ms)
    if wait_ms is not None:
        conf["agent"]["request_wait_ms"] = str(wait_ms)
    return conf


def start_tls_cluster(pki, replicas=1, **kw):
    """PostgreSQL primary + replicas, one pgcheckd per node with TLS on both ports; no HAProxy yet."""
    c = cl.Cluster(replicas=replicas)
    http_ports = cl.free_ports(c.n)
    c.http_ports = http_ports
    c.pgcheckd_conf = {i: cl.merge_conf({"admin": {"socket": str(c.tmp / f"tls{i}.sock")}},
                                        tls_node_conf(pki, http_ports[i], **kw)) for i in range(c.n)}
    try:
        c.start(pgcheckd=False, haproxy=False)
        ctx = tls_context(pki)
        for i, a in enumerate(c.agents):
            a.start()
            cl.wait_until(lambda a=a: tls_request(a.port, b"health\n", ctx) == b"up 100%\n", 30,
                          desc=f"{a.name} to answer over TLS")
    except BaseException:
        c.close()
        raise
    return c


def tls_haproxy(c, pki, ca="ca", client=True):
    """HAProxy running conf/haproxy-tls.cfg with ports and certificate paths substituted."""
    # new frontend ports each time: a port just released may meanwhile be some client's ephemeral port
    c.ports["write"], c.ports["read"], c.ports["api"] = cl.free_ports(3)
    mapping = {cl.DEMO_PORTS["write"]: c.ports["write"], cl.DEMO_PORTS["read"]: c.ports["read"],
               cl.DEMO_PORTS["api"]: c.ports["api"]}
    for i in range(3):
        alive = i < c.n
        mapping[cl.DEMO_PORTS["pg"][i]] = c.ports["pg"][i] if alive else cl.free_ports(1)[0]
        mapping[cl.DEMO_PORTS["agent"][i]] = c.ports["agent"][i] if alive else cl.free_ports(1)[0]
        mapping[DEMO_HTTP_PORTS[i]] = c.http_ports[i] if alive else cl.free_ports(1)[0]
    h = cl.Haproxy(c, mapping, TLS_CFG)
    text = h.text.replace(DEMO_CA, str(pki.dir / f"{ca}.pem"))
    if client:
        text = text.replace(DEMO_CLIENT, str(pki.dir / "client-bundle.pem"))
    else:
        text = text.replace(f" crt {DEMO_CLIENT}", "")
    h.text = text
    h.cfg.write_text(text)
    c.haproxy = h
    return h.start()


def up_servers(c, backend):
    return {s for s, (status, _) in c.haproxy.states(backend).items() if status.startswith("UP")}


def failures(agent, since=0):
    return FAILURE_RE.findall(agent.log()[since:])


def tls_failed_total(c, pki, i=0):
    """pgcheckd_tls_handshakes_failed_total of node i, read from /metrics over TLS."""
    body = tls_request(c.http_ports[i], b"GET /metrics HTTP/1.0\r\n\r\n", tls_context(pki))
    m = re.search(rb"^pgcheckd_tls_handshakes_failed_total (\d+)$", body, re.M)
    assert m, "pgcheckd_tls_handshakes_failed_total not in /metrics"
    return int(m.group(1))


def test_haproxy_routes_writes_and_reads_through_tls_checks(pki, report):
    c = start_tls_cluster(pki, replicas=1)
    try:
        tls_haproxy(c, pki)
        cl.wait_until(lambda: up_servers(c, "be_primary") == {"node1"} and up_servers(c, "be_replicas") == {"node2"},
                      15, desc="node1 UP for writes and node2 UP for reads over TLS checks")
        assert c.where("write") == ("node1", False)
        assert c.where("read") == ("node2", True)
        time.sleep(1)  # some 10 checks of each kind over TLS
        assert up_servers(c, "be_primary") == {"node1"} and up_servers(c, "be_replicas") == {"node2"}
        for a in c.agents:
            assert failures(a) == [], a.log()
        # a failover is seen through the TLS checks as through plain ones
        c.pg[0].stop()
        t0 = time.monotonic()
        c.pg[1].promote()
        cl.wait_until(lambda: up_servers(c, "be_primary") == {"node2"}, 15, desc="node2 UP for writes")
        report(f"promote -> node2 UP in be_primary over TLS checks: {time.monotonic() - t0:.2f}s")
        assert c.where("write") == ("node2", False)
        c.through("write", "CREATE TABLE tls_t (x int)")
    finally:
        c.close()


def hold_down(c, seconds=2.0):
    """node1 stays DOWN in be_primary, and a write through HAProxy fails, for the whole time."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert "node1" not in up_servers(c, "be_primary")
        time.sleep(0.1)
    with pytest.raises(psycopg2.OperationalError):
        c.through("write", timeout=2)


def test_wrong_ca_expired_certificate_and_missing_client_certificate_fail_closed_logged_once(pki, report):
    c = start_tls_cluster(pki, replicas=0)
    a = c.agents[0]
    try:
        cases = [("HAProxy trusts another CA", dict(ca="other"), None, "unknown ca"),
                 ("HAProxy shows no client certificate", dict(client=False), None, "did not return a certificate"),
                 ("pgcheckd serves an expired certificate", {}, "expired", "certificate expired")]
        # the control: with the right files the node is UP
        tls_haproxy(c, pki)
        cl.wait_until(lambda: up_servers(c, "be_primary") == {"node1"}, 15, desc="node1 UP (control)")
        c.haproxy.stop()
        for what, hx, cert, reason in cases:
            if cert is not None:
                a.write_conf({"tls": {"cert_file": str(pki.dir / f"{cert}.pem"),
                                      "key_file": str(pki.dir / f"{cert}.key")}})
                mark = len(a.log())
                a.sighup()
                cl.wait_until(lambda: "configuration reloaded" in a.log()[mark:], 5, desc="reload")
            since = len(a.log())
            tls_haproxy(c, pki, **hx)
            cl.wait_until(lambda: c.haproxy.status("be_primary", "node1").startswith("DOWN"), 10,
                          desc=f"node1 DOWN when {what}")
            hold_down(c)
            got = failures(a, since)
            report(f"{what}: DOWN; pgcheckd logged {got}")
            assert len(got) == 1 and reason in got[0], (what, got)  # once, with why, never per check
            c.haproxy.stop()
    finally:
        c.close()


def half_client_hello():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inb, outb, server_side=False)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outb.read()
    return hello[:len(hello) // 2]


def read_until_closed(s, timeout):
    """Everything s receives until the peer closes (or resets), within timeout; None if it never does."""
    s.settimeout(timeout)
    buf = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return buf
            buf += chunk
    except ConnectionResetError:
        return buf
    except socket.timeout:
        return None


def test_a_plain_text_client_on_a_tls_port_gets_nothing_and_stalls_no_one(pki, report):
    c = start_tls_cluster(pki, replicas=0)
    a = c.agents[0]
    ctx = tls_context(pki)
    try:
        since = len(a.log())
        failed0 = tls_failed_total(c, pki)
        for port, data in ((a.port, b"primary\n"), (c.http_ports[0], b"GET /primary HTTP/1.0\r\n\r\n")):
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                s.sendall(data)
                got = read_until_closed(s, 3)
            assert got is not None, "the plain-text client was not closed"
            assert b"up" not in got and b"down" not in got and b"HTTP/" not in got, got
        # 40 plain-text clients that say something and then hold their connection open
        held = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=3)
            s.sendall(b"prim")
            held.append(s)
        t0 = time.monotonic()
        for _ in range(10):
            assert tls_request(a.port, b"primary\n", ctx) == b"up 100%\n"
            status = tls_request(c.http_ports[0], b"GET /primary HTTP/1.0\r\n\r\n", ctx)
            assert re.match(rb"HTTP/1\.[01] 200 ", status), status[:80]
        report(f"20 TLS checks with 40 plain-text clients holding on: {time.monotonic() - t0:.2f}s")
        for s in held:
            assert read_until_closed(s, 5) is not None  # each one closed, within its deadline
            s.close()
        got = failures(a, since)
        report(f"pgcheckd logged: {got}")
        assert 1 <= len(got) <= 3, got  # one line per reason (agent port, HTTP port), not per connection
        # ... but every failed handshake is counted: 2 plain requests and 40 held clients
        failed = tls_failed_total(c, pki) - failed0
        report(f"pgcheckd_tls_handshakes_failed_total rose by {failed}")
        assert failed == 42, failed
    finally:
        c.close()


def test_half_a_client_hello_is_cut_at_client_timeout_and_checks_are_answered(pki, report):
    timeout_ms = 1000
    c = start_tls_cluster(pki, replicas=0, timeout_ms=timeout_ms)
    a = c.agents[0]
    ctx = tls_context(pki)
    try:
        since = len(a.log())
        half = half_client_hello()
        slow = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=3)
            s.sendall(half)
            slow.append((s, time.monotonic()))
        answered, worst = 0, 0.0
        while time.monotonic() - slow[0][1] < timeout_ms / 1000.0 * 0.8:
            t = time.monotonic()
            assert tls_request(a.port, b"primary\n", ctx) == b"up 100%\n"
            worst = max(worst, time.monotonic() - t)
            answered += 1
        closed_after = []
        for s, t in slow:
            assert read_until_closed(s, 10) is not None, "a half handshake was never cut"
            closed_after.append(time.monotonic() - t)
            s.close()
        report(f"20 half ClientHellos cut after {min(closed_after):.2f}-{max(closed_after):.2f}s "
               f"(client_timeout_ms {timeout_ms}); meanwhile {answered} TLS checks answered, slowest {worst*1000:.0f} ms")
        assert answered >= 3
        assert min(closed_after) >= timeout_ms / 1000.0 * 0.8  # not before the deadline ...
        assert max(closed_after) <= timeout_ms / 1000.0 + 5.0  # ... and not long after it
        got = failures(a, since)
        assert len(got) == 1 and "client_timeout_ms" in got[0], got
        assert tls_failed_total(c, pki) == 20  # each cut handshake counted, though logged once
    finally:
        c.close()


def test_reload_swaps_the_certificate_with_checks_answered_throughout(pki, report):
    # a long request wait, so that a connection opened before the reload can ask after it
    c = start_tls_cluster(pki, replicas=0, timeout_ms=5000, wait_ms=4000)
    a = c.agents[0]
    ctx = tls_context(pki)
    try:
        first, second = file_fingerprint(pki.dir / "server.pem"), file_fingerprint(pki.dir / "server2.pem")
        assert tls_request(a.port, b"primary\n", ctx, want_cert=True) == (b"up 100%\n", first)
        stop = threading.Event()
        seen = {"ok": 0, "bad": [], "certs": set()}

        def poll():
            while not stop.is_set():
                try:
                    reply, fp = tls_request(a.port, b"primary\n", ctx, want_cert=True)
                    if reply == b"up 100%\n":
                        seen["ok"] += 1
                        seen["certs"].add(fp)
                    else:
                        seen["bad"].append(reply)
                except (OSError, ssl.SSLError) as e:
                    seen["bad"].append(repr(e))
        th = threading.Thread(target=poll, daemon=True)
        th.start()
        # a connection whose handshake is done before the reload asks after it
        raw = socket.create_connection(("127.0.0.1", a.port), timeout=3)
        early = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        assert fingerprint(early.getpeercert(binary_form=True)) == first
        time.sleep(0.3)
        cert = pki.dir / "active.pem"
        key = pki.dir / "active.key"
        shutil.copy(pki.dir / "server2.pem", cert)
        shutil.copy(pki.dir / "server2.key", key)
        os.chmod(key, 0o600)
        a.write_conf({"tls": {"cert_file": str(cert), "key_file": str(key)}})
        mark = len(a.log())
        a.sighup()
        cl.wait_until(lambda: second in seen["certs"], 5, desc="the new certificate served")
        early.sendall(b"primary\n")
        assert early.recv(100) == b"up 100%\n"
        early.close()
        # a certificate that cannot be used: the running one stays
        cert.write_text("not a certificate\n")
        a.sighup()
        cl.wait_until(lambda: "keeping the running configuration and certificate" in a.log()[mark:], 5,
                      desc="the bad certificate refused")
        time.sleep(0.5)
        stop.set()
        th.join(10)
        assert tls_request(a.port, b"primary\n", ctx, want_cert=True) == (b"up 100%\n", second)
        report(f"{seen['ok']} TLS checks across two reloads, {len(seen['bad'])} failed; certificates served: "
               f"{len(seen['certs'])}")
        assert seen["bad"] == [] and seen["certs"] == {first, second}
        assert "PRIVATE KEY" not in a.log()
    finally:
        c.close()


def test_a_key_file_others_may_read_is_refused_at_start_and_at_reload(pki, report):
    c = start_tls_cluster(pki, replicas=0)
    a = c.agents[0]
    ctx = tls_context(pki)
    key = pki.dir / "loose.key"
    shutil.copy(pki.dir / "server.key", key)
    try:
        os.chmod(key, 0o644)
        text = a.ini.read_text().replace(str(pki.dir / "server.key"), str(key))
        bad = c.tmp / "loose.ini"
        bad.write_text(text)
        line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("key_file"))
        rc, _out, err = cl.pgcheckd_check_config(bad)
        report(f"pgcheckd -t: exit {rc}: {err.strip()}")
        assert rc == 2 and f"{bad}:{line}: [tls] key_file:" in err and "0644" in err, err
        r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(bad)], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and "[tls] key_file" in r.stderr, r.stderr
        # the running agent: the same file on reload keeps what runs
        mark = len(a.log())
        a.write_conf(text=text)
        a.sighup()
        cl.wait_until(lambda: "reload failed" in a.log()[mark:], 5, desc="the reload refused")
        assert "[tls] key_file" in a.log()[mark:] and "0644" in a.log()[mark:]
        assert tls_request(a.port, b"primary\n", ctx) == b"up 100%\n"
        assert "PRIVATE KEY" not in a.log() + err
        # -t loads the certificate and key too: one that cannot be used is a bad configuration
        garbage = c.tmp / "garbage.pem"
        garbage.write_text("not a certificate\n")
        rc, _out, err = cl.pgcheckd_check_config(a.write_conf(text=a.ini.read_text().replace(
            str(pki.dir / "server.pem"), str(garbage)).replace(str(key), str(pki.dir / "server.key"))))
        report(f"pgcheckd -t with a bad certificate: exit {rc}: {err.strip()}")
        assert rc == 2 and "[tls] cert_file" in err, err
    finally:
        key.unlink(missing_ok=True)
        c.close()


def test_a_flood_of_half_handshakes_does_not_lock_checks_out(pki, report):
    # past max_clients_per_source (64), a new connection takes the slot of the oldest unfinished one:
    # a stalled handshake is unfinished, so the checks from the same address still get in
    c = start_tls_cluster(pki, replicas=0, timeout_ms=5000)
    a = c.agents[0]
    ctx = tls_context(pki)
    try:
        half = half_client_hello()
        flood = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=3)
            s.sendall(half)
            flood.append(s)
        t0 = time.monotonic()
        for _ in range(10):
            assert tls_request(a.port, b"primary\n", ctx) == b"up 100%\n"
        report(f"10 TLS checks with 200 stalled handshakes from the same address: {time.monotonic() - t0:.2f}s")
        for s in flood:
            s.close()
    finally:
        c.close()
