"""What differs between PostgreSQL and HAProxy versions, checked against the servers the matrix runs
(tests/compat/matrix sets PG_BIN and HAPROXY_BIN; without it, the host's PostgreSQL 15 and HAProxy 2.6).

COMPAT_EXPECT_PG and COMPAT_EXPECT_HAPROXY (set by the matrix) are the versions the binaries reported:
the tests check that the servers they reached are those, so a wrapper that silently ran the host's
binaries could not pass for another version."""

import os
import re
import shutil
import subprocess
import tempfile

import cluster as cl

EXPECT_PG = os.environ.get("COMPAT_EXPECT_PG")
EXPECT_HAPROXY = os.environ.get("COMPAT_EXPECT_HAPROXY")
SAMPLE_ERROR_RE = re.compile(r"(?i)\bERROR\b|syntax error|does not exist|sample failed|query failed")


def test_sample_query_runs_and_reads_the_role():
    """pgcheckd's one sample query runs on this PostgreSQL: each node answers its own role, up, and its
    log has no SQL error (a missing column or function would take every node down #pg)."""
    with cl.Cluster(replicas=1) as c:
        c.start(haproxy=False)
        version = c.pg[0].sql1("SHOW server_version")
        if EXPECT_PG:
            assert version.split()[0] == EXPECT_PG, f"reached PostgreSQL {version}, the matrix expected {EXPECT_PG}"
        primary, replica = c.agents
        assert re.match(r"^up\b", primary.ask("primary")), primary.ask("primary")
        assert primary.ask("replica").startswith("down"), primary.ask("replica")
        assert re.match(r"^up\b", replica.ask("replica")), replica.ask("replica")
        assert replica.ask("primary").startswith("down"), replica.ask("primary")
        for a in c.agents:
            bad = [l for l in a.log().splitlines() if SAMPLE_ERROR_RE.search(l)]
            assert not bad, f"{a.name} on PostgreSQL {version}: {bad[:3]}"


def test_every_shipped_haproxy_configuration_is_accepted():
    """`haproxy -c` accepts every configuration in conf/ as shipped (each one the README shows), with no
    warning (a keyword deprecated in a newer HAProxy warns first)."""
    configs = sorted(cl.REPO.glob("conf/*.cfg"))
    assert configs
    # the binary may run in a chroot that sees /tmp but not the repository: check copies in /tmp
    with tempfile.TemporaryDirectory(prefix="pgcheckd-compat-") as d:
        # the TLS configuration names certificate files HAProxy must open: one self-signed certificate
        # with its key, made here, stands in for each of them
        pem = os.path.join(d, "stand-in.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", pem + ".key", "-out", pem + ".crt", "-days", "2", "-subj", "/CN=pgcheckd-compat"],
                       check=True, capture_output=True, timeout=30)
        with open(pem, "w") as out:
            out.write(open(pem + ".crt").read() + open(pem + ".key").read())
        for cfg in configs:
            copy = os.path.join(d, cfg.name)
            with open(copy, "w") as out:
                out.write(re.sub(r"/etc/haproxy/pgcheckd-[a-z]+\.pem", pem, cfg.read_text()))
            rc, out = cl._run([cl.HAPROXY_BIN, "-c", "-f", copy], check=False, timeout=30)
            assert rc == 0, f"haproxy -c rejected {cfg.name}:\n{out}"
            assert "[WARNING]" not in out and "[ALERT]" not in out, f"haproxy -c warns about {cfg.name}:\n{out}"
        rc, out = cl._run([cl.HAPROXY_BIN, "-v"], check=False)
        if EXPECT_HAPROXY:
            assert f"version {EXPECT_HAPROXY}" in out, out


DYNAMIC_CFG = """\
global
    stats socket ipv4@127.0.0.1:15002 level admin
    stats timeout 10s

defaults
    mode tcp
    timeout connect 1s
    timeout client 30m
    timeout server 30m
    timeout check 500ms

frontend fe_read
    bind 127.0.0.1:15001
    default_backend be_dyn

frontend fe_write
    bind 127.0.0.1:15000
    tcp-request connection reject unless { nbsrv(be_primary) eq 1 }
    default_backend be_primary

backend be_primary
    balance first

backend be_dyn
    balance roundrobin
"""


def test_node_adds_itself_to_a_dynamic_backend_and_deletes_itself_on_shutdown():
    """[haproxy] dynamic_backends: each replica's pgcheckd adds itself with `add server` (its health and
    agent checks enabled), reads through the frontend reach it; on SIGTERM it deletes itself
    (`del server`) and the backend is empty again. The grammar of add/del server differs across
    HAProxy versions; this runs against each."""
    c = cl.Cluster(replicas=2)
    try:
        c.start(pgcheckd=False, haproxy=False)
        src = c.tmp / "haproxy-dynamic.cfg"
        src.write_text(DYNAMIC_CFG)
        mapping = {cl.DEMO_PORTS[k]: c.ports[k] for k in ("write", "read", "api")}
        c.haproxy = cl.Haproxy(c, mapping, src)
        c.haproxy.start()
        if EXPECT_HAPROXY:
            info = c.haproxy.api("show info")
            assert re.search(rf"^Version: {re.escape(EXPECT_HAPROXY)}\b", info, re.M), info[:300]
        for i in (1, 2):
            c.agents[i].write_conf({"haproxy": {"runtime_api": f"127.0.0.1:{c.ports['api']}",
                                                "dynamic_backends": "be_dyn:replica",
                                                "advertise_addr": "127.0.0.1",
                                                "advertise_pg_port": str(c.pg[i].port), "reconcile_ms": "500"}})
            c.agents[i].start()

        def up_ports():
            rows = [r for r in c.haproxy.show_servers_state() if r.get("be_name") == "be_dyn"]
            stat = c.haproxy.servers("be_dyn")
            return {int(r["srv_port"]) for r in rows if stat.get(r["srv_name"], {}).get("status", "").startswith("UP")}

        want = {c.pg[1].port, c.pg[2].port}
        cl.wait_until(lambda: up_ports() == want, 20, desc=f"both replicas added and UP in be_dyn (ports {want})")
        counts = c.spread("read", 12)
        assert set(counts) == {"node2", "node3"}, counts
        c.agents[1].stop(timeout=10)

        def gone():
            rows = [r for r in c.haproxy.show_servers_state() if r.get("be_name") == "be_dyn"]
            return {int(r["srv_port"]) for r in rows} == {c.pg[2].port}
        cl.wait_until(gone, 10, desc="node2 deleted from be_dyn after its pgcheckd stopped")
        assert "withdrew from be_dyn" in c.agents[1].log(), c.agents[1].log()
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()
