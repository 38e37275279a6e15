"""Locality: each data centre's HAProxy asks with prefer=dc=..., and its own replicas keep their weight."""

import subprocess

import psycopg2

import cluster as cl

REPLICA_SEND = 'agent-send "replica\\n"'


def ctl(agent, command):
    return subprocess.run([cl.PGCHECKD_BIN, "-c", str(agent.ini), "ctl", command], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=10).returncode


def dc_haproxy(c, dc):
    """A second HAProxy on conf/haproxy.cfg whose read backend asks 'replica prefer=dc=<dc>'."""
    def edit(text):
        assert text.count(REPLICA_SEND) == 1, "conf/haproxy.cfg's read backend no longer sends 'replica\\n'"
        return text.replace(REPLICA_SEND, f'agent-send "replica prefer=dc={dc}\\n"')
    return c.extra_haproxy(name=f"haproxy-dc-{dc}", edit=edit)


def test_each_data_centre_haproxy_prefers_its_own_replicas_and_fails_over(shared_cluster, report):
    c = shared_cluster
    node2, node3 = c.agents[1], c.agents[2]
    haproxies = []
    # load must not bring a replica's own weight down to the floor while this runs (a loaded CI host)
    unloaded = {"load_low_per_cpu": "500", "load_high_per_cpu": "1000"}
    try:
        node2.write_conf({"agent": {"location": "dc=a, zone=1"}, "weight": unloaded})
        node3.write_conf({"agent": {"location": "dc=b"}, "weight": unloaded})
        node2.sighup()
        node3.sighup()
        cl.wait_until(lambda: node2.ask("replica prefer=dc=b") == "up 10%" and node3.ask("replica prefer=dc=a")
                      == "up 10%", 10, desc="the reloaded locations to apply")
        # a node answers with its own weight where it is preferred, and never down for prefer alone
        cl.wait_until(lambda: node2.ask("replica") == "up 100%", 10, desc="node2's own weight at 100%")
        assert node2.ask("replica prefer=dc=a") == "up 100%"
        assert node2.ask("replica prefer=dc=a prefer=zone=1") == "up 100%"
        assert node2.ask("replica prefer=dc=a prefer=zone=2") == "up 10%"
        assert node2.ask("replica prefer=dc") == "down #bad-request"
        assert c.agents[0].ask("primary prefer=dc=b") == "up 100%"  # writes ignore it
        a, b = dc_haproxy(c, "a"), dc_haproxy(c, "b")
        haproxies = [a, b]

        def weights():
            return {(name, s): h.weight("be_replicas", s) for name, h in (("a", a), ("b", b))
                    for s in ("node2", "node3")}

        def flipped():
            w = weights()
            return w if (w[("a", "node3")] == 10 and w[("b", "node2")] == 10 and w[("a", "node2")] == 100
                         and w[("b", "node3")] == 100) else None
        w = cl.wait_until(flipped, 10, interval=0.1, desc="each HAProxy's weights to prefer its own replica")
        report(f"be_replicas weights: {w}")
        # reads in data centre a go mostly to node2; with node2 out, they fail over to node3
        assert node2.ask("replica") != "down #maint"
        assert ctl(node2, "maint") == 0
        cl.wait_until(lambda: a.states("be_replicas")["node2"][0].startswith("DOWN"), 10,
                      desc="node2 DOWN in data centre a's HAProxy")
        seen = set()
        for _ in range(5):
            conn = psycopg2.connect(host="127.0.0.1", port=a.read_port, user=cl.PG_USER, dbname="postgres",
                                    connect_timeout=3)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT inet_server_port(), pg_is_in_recovery()")
                    srv_port, rec = cur.fetchone()
            finally:
                conn.close()
            assert rec is True
            seen.add(c.node_of_port(srv_port))
        assert seen == {"node3"}, seen
        report(f"node2 in maintenance: data centre a's reads went to {seen}")
    finally:
        for h in haproxies:
            h.stop()
        ctl(node2, "ready")
        for n in (node2, node3):
            n.conf["agent"].pop("location", None)
            for k in unloaded:
                n.conf.get("weight", {}).pop(k, None)
            n.write_conf()
            n.sighup()
        cl.wait_until(lambda: node2.ask("replica prefer=dc=a") == "up 10%" and node2.ask("replica") != "down #maint",
                      10, desc="node2 back without a location and out of maintenance")
