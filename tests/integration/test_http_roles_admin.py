"""HTTP (Patroni-compatible), role ports and the admin socket, against real PostgreSQL and HAProxy.

Every HTTP status and every role port's state must agree with the agent protocol's answer, because all
of them render the same verdict; the HAProxy configurations run here are the README's, ports changed.
"""

import http.client
import os
import subprocess
import time

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

import cluster as cl

REPO = cl.REPO
PATRONI_CFG = REPO / "conf" / "haproxy-patroni.cfg"
ROLEPORTS_CFG = REPO / "conf" / "haproxy-roleports.cfg"
TLS_CFG = REPO / "conf" / "haproxy-tls.cfg"
# role ports of node1..3 in conf/haproxy-roleports.cfg: (primary_port, replica_port)
DEMO_ROLE_PORTS = [(15490, 15491), (15492, 15493), (15494, 15495)]


def http_get(port, method, path, timeout=3):
    """(status, body bytes) of one HTTP request to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start_cluster(haproxy_cfg=None, per_node=None, extra_mapping=None):
    """A primary + 2 replicas with per-node pgcheckd settings (admin socket in the temp dir) and,
    when haproxy_cfg is given, HAProxy running that file with the demo ports mapped to the real ones."""
    c = cl.Cluster()
    conf = {}
    for i in range(c.n):
        conf[i] = {"admin": {"socket": str(c.tmp / f"admin{i}.sock")}}
        for section, keys in ((per_node or {}).get(i) or {}).items():
            conf[i].setdefault(section, {}).update(keys)
    c.pgcheckd_conf = conf
    try:
        c.start(haproxy=False)
        if haproxy_cfg is not None:
            mapping = {cl.DEMO_PORTS["write"]: c.ports["write"], cl.DEMO_PORTS["read"]: c.ports["read"],
                       cl.DEMO_PORTS["api"]: c.ports["api"]}
            for i in range(3):
                mapping[cl.DEMO_PORTS["pg"][i]] = c.ports["pg"][i]
                mapping[cl.DEMO_PORTS["agent"][i]] = c.ports["agent"][i]
            mapping.update(extra_mapping or {})
            c.haproxy = cl.Haproxy(c, mapping, haproxy_cfg)
            c.haproxy.start()
    except BaseException:
        c.close()
        raise
    return c


def ctl(cluster, i, *args):
    """`pgcheckd -c INI ctl|check ...` against node i's agent: (exit status, stdout)."""
    r = subprocess.run([cl.PGCHECKD_BIN, "-c", str(cluster.agents[i].ini), *args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    return r.returncode, r.stdout.decode(errors="replace")


def up_servers(cluster, backend):
    return {s for s, (status, _w) in cluster.haproxy.states(backend).items() if status.startswith("UP")}


def wait_up(cluster, backend, want, timeout):
    return cl.wait_until(lambda: up_servers(cluster, backend) == set(want), timeout,
                         desc=f"{backend} UP == {sorted(want)}")


@pytest.fixture
def plain():
    c = start_cluster()
    yield c
    c.close()


def test_http_status_matches_agent_answer_for_every_path(shared_cluster):
    c = shared_cluster
    paths = ["/", "/primary", "/master", "/leader", "/read-write", "/replica", "/standby", "/read-only",
             "/readiness", "/health", "/replica?lag=16MB", "/replica?lag=0&lag_s=0", "/read-only?lag=1GB"]
    agent_words = {"/": "primary", "/primary": "primary", "/master": "primary", "/leader": "primary",
                   "/read-write": "primary", "/replica": "replica", "/standby": "replica",
                   "/read-only": "read-only", "/readiness": "read-only", "/health": "health",
                   "/replica?lag=16MB": "replica lag=16MB", "/replica?lag=0&lag_s=0": "replica lag=0 lag_s=0",
                   "/read-only?lag=1GB": "read-only lag=1GB"}
    seen = set()
    for agent in c.agents:
        for path in paths:
            answer = agent.ask(agent_words[path])
            for method in ("GET", "HEAD", "OPTIONS"):
                status, body = http_get(agent.port, method, path)
                assert status == (200 if answer.startswith("up") else 503), (agent, path, method, answer)
                if method != "GET":
                    assert body == b""
                seen.add(status)
    assert seen == {200, 503}  # the primary and the replicas answer differently
    status, body = http_get(c.agents[1].port, "GET", "/replica")
    assert status == 200
    assert b'"role":"replica"' in body and b'"streaming":true' in body


def test_http_errors_are_bounded_answers(shared_cluster):
    port = shared_cluster.agents[0].port
    assert http_get(port, "GET", "/nope")[0] == 404
    assert http_get(port, "POST", "/primary")[0] == 405
    assert http_get(port, "GET", "/replica?lag=lots")[0] == 400
    assert http_get(port, "GET", "/replica?tag_nofailover=true")[0] == 400
    assert http_get(port, "GET", "/liveness")[0] == 200
    # a header block that never ends is cut at the size limit with 431, not read forever
    reply = cl.agent_request(port, b"GET /primary HTTP/1.1\r\nX: " + b"a" * 8000, timeout=3)
    assert reply.startswith(b"HTTP/1.1 431")
    # an agent line and an HTTP request on the same port at once do not mix
    assert shared_cluster.agents[0].ask("primary") == "up 100%"


def test_status_and_metrics_parse_and_follow_the_node(plain):
    c = plain
    agent = c.agents[1]
    status, body = http_get(agent.port, "GET", "/status")
    assert status == 200
    import json
    doc = json.loads(body)
    assert doc["role"] == "replica" and doc["verdicts"]["primary"] == {"up": False, "weight": 0,
                                                                        "reason": "is-replica"}
    assert doc["verdicts"]["replica"]["up"] is True

    def metrics():
        text = http_get(agent.port, "GET", "/metrics")[1].decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    m = metrics()
    assert m[("pgcheckd_up", (("request", "replica"),))] == 1
    assert m[("pgcheckd_up", (("request", "primary"),))] == 0
    assert m[("pgcheckd_role", (("role", "replica"),))] == 1
    assert m[("pgcheckd_polls_total", (("result", "ok"),))] >= 1
    http_checks = m[("pgcheckd_checks_total", (("protocol", "http"),))]
    assert ctl(c, 1, "ctl", "maint") == (0, "ok maint\n")
    m2 = metrics()
    assert m2[("pgcheckd_up", (("request", "replica"),))] == 0
    assert m2[("pgcheckd_override", (("override", "maint"),))] == 1
    assert m2[("pgcheckd_checks_total", (("protocol", "http"),))] > http_checks
    ok_before = m[("pgcheckd_polls_total", (("result", "ok"),))]
    cl.wait_until(lambda: metrics()[("pgcheckd_polls_total", (("result", "ok"),))] > ok_before, 5,
                  desc="polls_total{result=ok} to grow")
    # the replica's PostgreSQL stops: its failure shows as a poll outcome and a down verdict
    assert ctl(c, 1, "ctl", "ready")[0] == 0
    c.pg[1].stop()
    cl.wait_until(lambda: metrics()[("pgcheckd_sample_fresh", ())] == 0, 10, desc="sample_fresh 0")
    m3 = metrics()
    assert m3[("pgcheckd_up", (("request", "health"),))] == 0
    failures = sum(v for (name, labels), v in m3.items() if name == "pgcheckd_polls_total" and
                   labels != (("result", "ok"),))
    assert failures >= 1


def test_ctl_and_check_commands(plain):
    c = plain
    assert ctl(c, 0, "check", "primary") == (0, "up 100%\n")
    assert ctl(c, 1, "check", "primary") == (1, "down #is-replica\n")
    assert ctl(c, 1, "check", "replica", "lag=0")[0] in (0, 1)
    assert ctl(c, 0, "ctl", "drain") == (0, "ok drain\n")
    assert ctl(c, 0, "check", "primary") == (0, "up 0%\n")
    assert c.agents[0].ask("primary") == "up 0%"
    code, out = ctl(c, 0, "ctl", "status")
    assert code == 0 and '"override":"drain"' in out
    assert ctl(c, 0, "ctl", "ready") == (0, "ok ready\n")
    assert c.agents[0].ask("primary") == "up 100%"
    assert ctl(c, 0, "ctl", "bogus")[0] == 2  # refused by the command line, nothing sent
    # the admin socket is owner-only
    assert oct(os.stat(c.agents[0].conf["admin"]["socket"]).st_mode & 0o777) == "0o600"
    c.agents[0].kill()
    assert ctl(c, 0, "check", "primary")[0] == 2  # cannot ask: neither up nor down


def test_ctl_drain_shows_drain_in_haproxy_and_keeps_sessions(plain):
    c = plain
    mapping = {cl.DEMO_PORTS["write"]: c.ports["write"], cl.DEMO_PORTS["read"]: c.ports["read"],
               cl.DEMO_PORTS["api"]: c.ports["api"]}
    for i in range(3):
        mapping[cl.DEMO_PORTS["pg"][i]] = c.ports["pg"][i]
        mapping[cl.DEMO_PORTS["agent"][i]] = c.ports["agent"][i]
    c.haproxy = cl.Haproxy(c, mapping)
    c.haproxy.start()
    c.wait_routing(primary=0, replicas=[1, 2])
    # a session that landed on node2 before the drain
    held = None
    for _ in range(20):
        conn = c.connect_frontend("read")
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_port()")
            if cur.fetchone()[0] == c.pg[1].port:
                held = conn
                break
        conn.close()
    assert held is not None, "no read session reached node2"
    assert ctl(c, 1, "ctl", "drain")[0] == 0
    cl.wait_until(lambda: c.haproxy.weight("be_replicas", "node2") == 0, 5, desc="node2 weight 0")
    assert c.haproxy.status("be_replicas", "node2").startswith("UP")  # drained, not down
    spread = c.spread("read", 20)
    assert spread == {"node3": 20}, spread
    with held.cursor() as cur:  # the existing session stays
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    held.close()
    assert ctl(c, 1, "ctl", "maint")[0] == 0
    c.wait_status("be_replicas", 1, lambda s: s.startswith("DOWN"), timeout=5)
    assert ctl(c, 1, "ctl", "ready")[0] == 0
    cl.wait_until(lambda: c.haproxy.status("be_replicas", "node2").startswith("UP")
                  and c.haproxy.weight("be_replicas", "node2") > 0, 5, desc="node2 back with weight")


def test_patroni_template_routes_through_a_promotion(report):
    c = start_cluster(PATRONI_CFG)
    try:
        wait_up(c, "primary", {"node1"}, timeout=10)
        wait_up(c, "replicas", {"node2", "node3"}, timeout=10)
        assert c.where("write") == ("node1", False)
        reads = c.spread("read", 10)
        assert set(reads) <= {"node2", "node3"} and sum(reads.values()) == 10, reads
        c.pg[0].stop()
        t0 = time.monotonic()
        c.pg[1].promote()
        wait_up(c, "primary", {"node2"}, timeout=10)
        report(f"Patroni-style checks (inter 200ms rise 1 fall 1): new primary UP {time.monotonic() - t0:.1f}s "
               f"after pg_ctl promote returned")
        assert c.where("write") == ("node2", False)
        c.through("write", "CREATE TABLE IF NOT EXISTS patroni_t (x int)")
        c.through("write", "INSERT INTO patroni_t VALUES (1)")
        assert c.pg[1].sql1("SELECT count(*) FROM patroni_t") == 1
    finally:
        c.close()


def test_role_ports_open_and_close_with_the_role():
    ports = cl.free_ports(6)
    per_node = {i: {"agent": {"primary_port": ports[2 * i], "replica_port": ports[2 * i + 1]}} for i in range(3)}
    mapping = {}
    for i, (p, r) in enumerate(DEMO_ROLE_PORTS):
        mapping[p] = ports[2 * i]
        mapping[r] = ports[2 * i + 1]
    c = start_cluster(ROLEPORTS_CFG, per_node, mapping)
    try:
        wait_up(c, "be_primary", {"node1"}, timeout=10)
        wait_up(c, "be_replicas", {"node2", "node3"}, timeout=10)
        assert cl.port_accepts(ports[0]) and not cl.port_accepts(ports[1])
        assert not cl.port_accepts(ports[2]) and cl.port_accepts(ports[3])
        assert cl.agent_request(ports[0]) == b"100% up\n"  # nothing asked: weight first
        assert c.where("write") == ("node1", False)
        # the primary's PostgreSQL stops: its primary port closes, HAProxy takes it out
        c.pg[0].stop()
        cl.wait_until(lambda: not cl.port_accepts(ports[0]), 5, desc="node1 primary port closed")
        wait_up(c, "be_primary", set(), timeout=5)
        with pytest.raises(psycopg2.OperationalError):
            c.through("write", timeout=2)
        # node2 is promoted: its primary port opens and its replica port closes
        c.pg[1].promote()
        cl.wait_until(lambda: cl.port_accepts(ports[2]) and not cl.port_accepts(ports[3]), 5,
                      desc="node2 role ports switched")
        wait_up(c, "be_primary", {"node2"}, timeout=5)
        assert c.where("write") == ("node2", False)
        # pgcheckd dies: both of its ports close, so a plain TCP check fails closed
        c.agents[1].kill()
        wait_up(c, "be_primary", set(), timeout=5)
        assert not cl.port_accepts(ports[2])
    finally:
        c.close()


def test_readme_shows_every_tested_haproxy_configuration():
    readme = (REPO / "README.md").read_text()
    for cfg in (cl.HAPROXY_CFG, PATRONI_CFG, ROLEPORTS_CFG, TLS_CFG, REPO / "conf" / "haproxy-quiet.cfg"):
        assert cfg.read_text() in readme, f"{cfg.name} is not in README.md verbatim"
