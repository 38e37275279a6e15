"""Nodes join and leave a running HAProxy by themselves (conf/haproxy-register.cfg, server-template
slots), and the scale-out controller runs its command on sustained load, within its limits."""

import threading
import time

import psycopg2
import pytest

import cluster as cl

REGISTER_CFG = cl.REPO / "conf" / "haproxy-register.cfg"
RECONCILE_MS = 500


def registration_conf(c, i):
    return {"haproxy": {"runtime_api": f"127.0.0.1:{c.ports['api']}",
                        "template_backends": "be_primary:pg, be_replicas:pg",
                        "advertise_addr": "127.0.0.1", "advertise_pg_port": str(c.pg[i].port),
                        "reconcile_ms": str(RECONCILE_MS)}}


def start_registering_cluster(replicas=2, extra=None):
    """PostgreSQL nodes, then HAProxy with empty template slots, then every pgcheckd at the same moment."""
    c = cl.Cluster(replicas=replicas)
    try:
        c.start(pgcheckd=False, haproxy=False)
        mapping = {cl.DEMO_PORTS["write"]: c.ports["write"], cl.DEMO_PORTS["read"]: c.ports["read"],
                   cl.DEMO_PORTS["api"]: c.ports["api"]}
        c.haproxy = cl.Haproxy(c, mapping, REGISTER_CFG)
        c.haproxy.start()
        for i, agent in enumerate(c.agents):
            agent.write_conf(cl.merge_conf(registration_conf(c, i), (extra or {}).get(i)))
        threads = [threading.Thread(target=a.start) for a in c.agents]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    except BaseException:
        c.close()
        raise
    return c


def slots(c, backend):
    """{node index: (slot name, status)} for the slots whose address is one of our nodes."""
    state = {r["srv_name"]: r for r in c.haproxy.show_servers_state() if r["be_name"] == backend}
    stat = c.haproxy.servers(backend)
    out = {}
    for name, r in state.items():
        for i, node in enumerate(c.pg):
            if int(r["srv_port"]) == node.port:
                assert i not in out, f"node{i + 1} holds two slots in {backend}: {out[i][0]} and {name}"
                out[i] = (name, stat[name]["status"])
    return out


def up_nodes(c, backend):
    return {i for i, (_slot, status) in slots(c, backend).items() if status.startswith("UP")}


def wait_registered(c, primary, replicas, timeout=15):
    cl.wait_until(lambda: up_nodes(c, "be_primary") == {primary} and up_nodes(c, "be_replicas") == set(replicas),
                  timeout, desc=f"be_primary UP {{{primary}}}, be_replicas UP {set(replicas)}")


@pytest.fixture
def reg():
    c = start_registering_cluster()
    yield c
    c.close()


def test_nodes_started_together_register_into_different_slots(reg):
    c = reg
    wait_registered(c, 0, [1, 2])
    for backend in ("be_primary", "be_replicas"):
        taken = slots(c, backend)
        assert len(taken) == 3
        assert len({slot for slot, _ in taken.values()}) == 3, taken  # three nodes, three slots
    assert c.where("write") == ("node1", False)
    reads = c.spread("read", 20)
    assert set(reads) == {"node2", "node3"}, reads
    # the claim is logged once a second look at the slots confirms it (after a 50-150 ms pause), which
    # can be after HAProxy's first passing check
    cl.wait_until(lambda: "registered as be_replicas/pg" in c.agents[1].log(), 5, desc="node2's registration logged")


def test_new_replica_registers_itself_and_receives_reads(reg):
    c = reg
    wait_registered(c, 0, [1, 2])
    port, agent_port = cl.free_ports(2)
    node = cl.PgNode(c, 3, port)
    c.pg.append(node)
    node.basebackup_from(c.pg[0])
    node.start()
    cl.wait_until(node.streaming, 20, desc="the new replica to stream")
    agent = cl.Pgcheckd(c, node, agent_port, registration_conf(c, 3))
    c.agents.append(agent)
    agent.start()
    wait_registered(c, 0, [1, 2, 3])
    reads = c.spread("read", 30)
    assert reads.get("node4", 0) > 0, reads


def test_haproxy_restart_is_followed_by_reregistration(reg, report):
    c = reg
    wait_registered(c, 0, [1, 2])
    c.haproxy.stop()
    c.haproxy.start()  # a fresh process from the same file: every slot is empty again
    t0 = time.monotonic()
    wait_registered(c, 0, [1, 2], timeout=10)
    report(f"after an HAProxy restart every node was registered and UP again in {time.monotonic() - t0:.2f}s "
           f"(reconcile_ms {RECONCILE_MS})")
    assert c.where("write") == ("node1", False)


def test_shutdown_withdraws_the_slot(reg):
    c = reg
    wait_registered(c, 0, [1, 2])
    slot, _ = slots(c, "be_replicas")[2]
    assert c.agents[2].stop() == 0
    assert 2 not in slots(c, "be_replicas")
    row = next(r for r in c.haproxy.show_servers_state() if r["be_name"] == "be_replicas" and r["srv_name"] == slot)
    assert (row["srv_addr"], row["srv_port"]) == ("127.0.0.1", "1")
    assert c.haproxy.status("be_replicas", slot) == "MAINT"
    assert f"withdrew from be_replicas/{slot}" in c.agents[2].log()


def test_reload_that_drops_a_backend_withdraws_from_it_and_keeps_the_others(reg):
    """The withdrawal runs on the registrar's thread (the loop hands the settings over and goes on)."""
    c = reg
    wait_registered(c, 0, [1, 2])
    slot, _ = slots(c, "be_primary")[0]
    # the primary registers into be_replicas too, on the same pass or the next (wait_registered only
    # waits for the replicas there)
    replica_slot, _ = cl.wait_until(lambda: slots(c, "be_replicas").get(0), 10, desc="node1's be_replicas slot")
    agent = c.agents[0]
    agent.write_conf({"haproxy": {"template_backends": "be_replicas:pg"}})
    agent.sighup()
    cl.wait_until(lambda: 0 not in slots(c, "be_primary"), 10, desc="node1 to leave be_primary")
    assert c.haproxy.status("be_primary", slot) == "MAINT"
    cl.wait_until(lambda: f"withdrew from be_primary/{slot}" in agent.log(), 5, desc="the withdrawal logged")
    assert agent.ask("primary") == "up 100%"  # the checks never stopped
    # what stays in the list is registered again: same address, same backend
    cl.wait_until(lambda: slots(c, "be_replicas").get(0, (None,))[0] is not None, 10,
                  desc="node1 back in be_replicas")
    assert len({s for s, _ in slots(c, "be_replicas").values()}) == 3, (replica_slot, slots(c, "be_replicas"))


def test_operator_maintenance_on_a_registered_slot_is_respected(reg):
    c = reg
    wait_registered(c, 0, [1, 2])
    slot, _ = slots(c, "be_replicas")[1]
    c.haproxy.api(f"disable agent be_replicas/{slot}")
    c.haproxy.api(f"set server be_replicas/{slot} state maint")
    time.sleep(4 * RECONCILE_MS / 1000)
    assert c.haproxy.status("be_replicas", slot) == "MAINT"
    assert slots(c, "be_replicas")[1][0] == slot  # not moved, not duplicated
    assert "in maintenance (an operator's): left alone" in c.agents[1].log()
    reads = c.spread("read", 10)
    assert reads == {"node3": 10}, reads


def test_unreachable_haproxy_does_not_touch_the_checks():
    c = cl.Cluster(replicas=0)
    try:
        dead = cl.free_ports(1)[0]
        c.pgcheckd_conf = {0: {"haproxy": {"runtime_api": f"127.0.0.1:{dead}", "template_backends": "be:pg",
                                           "advertise_addr": "127.0.0.1", "reconcile_ms": "200"}}}
        c.start(haproxy=False)
        for _ in range(20):
            assert c.agents[0].ask("primary", timeout=1) == "up 100%"
        time.sleep(1)
        log = c.agents[0].log()
        assert log.count("Connection refused; retrying") == 1, log  # logged once, retried with backoff
    finally:
        c.close()


def controller_conf(c, tmp, **kw):
    conf = {"scaleout": {"backend": "be_replicas", "interval_ms": "200", "window_s": "1",
                         "high_sessions": "2", "cooldown_s": "3", "max_pool": "5",
                         "up_command": f"echo \"$PGCHECKD_ACTION $PGCHECKD_POOL_SIZE\" >> {tmp}; echo provisioning"}}
    conf["scaleout"].update({k: str(v) for k, v in kw.items()})
    return conf


def hold_read_sessions(c, n):
    conns = []
    for _ in range(n):
        conns.append(c.connect_frontend("read"))
    return conns


def test_controller_runs_its_command_once_per_cooldown_and_within_limits(reg, report):
    c = reg
    wait_registered(c, 0, [1, 2])
    calls = c.tmp / "calls"
    agent = c.agents[0]
    agent.write_conf(controller_conf(c, calls))
    agent.sighup()
    held = hold_read_sessions(c, 12)  # 6 sessions per replica, over the threshold of 2
    try:
        t0 = time.monotonic()
        time.sleep(7.5)
        lines = calls.read_text().splitlines() if calls.exists() else []
        report(f"controller: {len(lines)} calls in {time.monotonic() - t0:.1f}s with cooldown 3s: {lines}")
        assert 2 <= len(lines) <= 3, lines
        assert all(line == "up 2" for line in lines)
        assert "scale-out command: provisioning" in agent.log()
        # at the maximum pool size it calls nothing
        agent.write_conf(controller_conf(c, calls, max_pool=2))
        agent.sighup()
        before = len(calls.read_text().splitlines())
        time.sleep(4)
        assert len(calls.read_text().splitlines()) == before
        assert "the pool is at its maximum 2" in agent.log()
        # dry run: logs, calls nothing
        agent.write_conf(controller_conf(c, calls, dry_run="true", cooldown_s=1))
        agent.sighup()
        time.sleep(3)
        assert len(calls.read_text().splitlines()) == before
        assert "scale-out (dry run): would run the up command" in agent.log()
    finally:
        for conn in held:
            try:
                conn.close()
            except psycopg2.Error:
                pass


def test_readme_shows_the_registration_configuration():
    assert REGISTER_CFG.read_text() in (cl.REPO / "README.md").read_text()
