"""The scale-out controller keeps track of the command it starts (issue 17, item 9; item 14 for the log):
its exit status is logged, a reload neither forgets it nor its cooldown, and it runs with a clean signal
mask and default dispositions. The load comes from a mock runtime API (fake_runtime_api.SlowApi without
delay) that reports 10 sessions per up server, over the threshold of 2."""

import os
import signal
import time

import pytest

import cluster as cl
import fake_runtime_api as fake


@pytest.fixture(scope="module")
def pg():
    c = cl.Cluster(replicas=0)
    c.start(pgcheckd=False, haproxy=False)
    yield c
    c.close()


@pytest.fixture
def api():
    a = fake.SlowApi(delay=0)
    yield a
    a.close()


def scaleout_conf(api, command, **kw):
    conf = {"haproxy": {"runtime_api": api.addr},
            "scaleout": {"backend": "be_replicas", "interval_ms": 100, "window_s": 1, "high_sessions": 2,
                         "cooldown_s": 30, "max_pool": 5, "up_command": command}}
    conf["scaleout"].update({k: str(v) for k, v in kw.items()})
    return conf


def start_agent(pg, conf, name):
    agent = cl.Pgcheckd(pg, pg.pg[0], cl.free_ports(1)[0], conf, name=name)
    agent.start()
    return agent


def kill_all(pidfile):
    for line in (pidfile.read_text().split() if pidfile.exists() else []):
        try:
            os.kill(int(line), signal.SIGKILL)
        except OSError:
            pass


def test_command_exiting_3_is_logged_as_failed_without_its_command_line(pg, api):
    # the command line may hold a secret (a token for a cloud API): it is never logged
    agent = start_agent(pg, scaleout_conf(api, "true token=S3cretMark; echo provisioning; exit 3"), "exit3")
    cl.wait_until(lambda: "scale-out command: provisioning" in agent.log(), 15, desc="the command's output")
    cl.wait_until(lambda: "failed with exit status 3" in agent.log(), 5,
                  desc=f"the failure to be logged; log:\n{agent.log()}")
    assert "S3cretMark" not in agent.log()
    assert agent.stop() == 0


def test_reload_while_a_command_runs_keeps_its_cooldown(pg, api, report):
    calls = pg.tmp / "cooldown-calls"
    agent = start_agent(pg, scaleout_conf(api, f"echo $$ >> {calls}; exec sleep 3"), "cooldown")
    try:
        cl.wait_until(lambda: calls.exists(), 15, desc="the first command")
        time.sleep(0.3)
        # a change of backend (this used to replace the controller, which forgot its command and cooldown)
        agent.write_conf({"scaleout": {"backend": "be_other"}})
        agent.sighup()
        time.sleep(5)  # the first command ends after 3 s; the cooldown is 30 s
        lines = calls.read_text().split()
        report(f"{len(lines)} command(s) within 5 s of a reload, cooldown 30 s")
        assert len(lines) == 1, lines
        assert agent.stop() == 0
    finally:
        kill_all(calls)


def test_reload_while_a_command_runs_does_not_start_a_second(pg, api):
    runs = pg.tmp / "overlap-runs"
    pids = pg.tmp / "overlap-pids"
    # no cooldown: only the running command holds the next one back
    agent = start_agent(pg, scaleout_conf(api, f"echo $$ >> {pids}; echo start >> {runs}; sleep 9; "
                                                f"echo end >> {runs}", cooldown_s=0), "overlap")
    try:
        cl.wait_until(lambda: runs.exists(), 15, desc="the first command")
        time.sleep(0.3)
        agent.write_conf({"scaleout": {"backend": "be_other", "interval_ms": 150}})
        agent.sighup()
        time.sleep(7.5)  # before: the reload waited 5 s for the command, then a new controller started another
        seq = runs.read_text().split()
        assert agent.stop() == 0
        # every start is followed by its end before the next start
        for i, word in enumerate(seq):
            assert word == ("start" if i % 2 == 0 else "end"), seq
        assert seq, seq
    finally:
        kill_all(pids)


def test_command_runs_with_a_clean_signal_mask_and_dies_on_sigterm(pg, api):
    sig = pg.tmp / "signals"
    pidfile = pg.tmp / "sigterm-pid"
    agent = start_agent(pg, scaleout_conf(
        # the shell reads its own status with a builtin: a child (grep) reading /proc/$$/status would see
        # the mask dash sets on itself while it waits for that child (all blocked; 206 of 300 reads here)
        api, "while read -r l; do case $l in Sig[BI]*) echo \"$l\";; esac; done < /proc/$$/status"
        f" > {sig}; echo $$ > {pidfile}; exec sleep 30"), "sigmask")
    try:
        cl.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 15, desc="the command")
        status = {k: int(v, 16) for k, v in (line.split(":\t") for line in sig.read_text().splitlines())}
        # signals 1 to 31 (glibc keeps its two internal ones, 32 and 33, ignored in any child of a threaded
        # process). dash clears its own mask at start, bash keeps what it was given: check both.
        standard = (1 << 31) - 1
        assert status["SigBlk"] & standard == 0, status
        assert status["SigIgn"] & standard == 0, status  # pgcheckd ignores SIGPIPE; its command must not
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        cl.wait_until(lambda: not cl.pid_alive(pid), 5, desc="the command to die of SIGTERM")
        cl.wait_until(lambda: "ended by signal 15" in agent.log(), 5, desc=f"its end logged; log:\n{agent.log()}")
        assert agent.stop() == 0
    finally:
        kill_all(pidfile)
