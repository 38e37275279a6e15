"""`pgcheckd -t` and SIGHUP reloads: errors name file:line and the key; a bad reload keeps the old config."""

import re
import time

import pytest

import cluster as cl

GOOD = """\
[agent]
listen = 127.0.0.1:{port}
default_request = replica
max_clients = 256
request_idle_ms = 20
client_timeout_ms = 500
shutdown_drain_ms = 0

[pg]
conninfo = host=/tmp port=5432 dbname=postgres user=postgres
poll_interval_ms = 200
query_timeout_ms = 500
connect_timeout_ms = 1000
reconnect_max_ms = 2000
stale_after_ms = 1500

[replica]
max_lag_bytes = 16MB
max_lag_s = 10
recover_pct = 50
over_lag = down
receiver_silence_max_ms = 60000

[weight]
floor_pct = 10
step_pct = 10
smoothing_ms = 2000
lag_soft_bytes = 1MB
lag_soft_s = 1
load_low_per_cpu = 0.5
load_high_per_cpu = 2
primary_read_pct = 100

[log]
level = info
syslog = false
"""

# (test id, ini text, line, section, key): each text is wrong on exactly that line.
BAD = [
    ("unknown-key", "[agent]\ndefault_request = replica\nno_such_key = 1\n", 3, "agent", "no_such_key"),
    ("out-of-range", "[pg]\npoll_interval_ms = 200\n\n[weight]\nfloor_pct = 0\n", 5, "weight", "floor_pct"),
    ("bad-enum", "[replica]\nover_lag = sideways\n", 2, "replica", "over_lag"),
    ("bad-bytes", "[replica]\nmax_lag_s = 10\nmax_lag_bytes = 16XB\n", 3, "replica", "max_lag_bytes"),
    ("not-a-number", "[agent]\nmax_clients = many\n", 2, "agent", "max_clients"),
    ("set-twice", "[agent]\nmax_clients = 10\nmax_clients = 20\n", 3, "agent", "max_clients"),
    ("unknown-section-key", "[agent]\nmax_clients = 10\n[nosuch]\nlevel = info\n", 4, "nosuch", "level"),
    # a ';' or '#' after a value is part of it (issue 17 item 12): this one is then not an address
    ("comment-after-value", "[agent]\nlisten = 127.0.0.1:5480 ; the agent port\n", 2, "agent", "listen"),
    # deadlines that cannot fit inside the stale and fresh limits (issue 17 item 3)
    ("query-deadline-past-stale", "[pg]\nquery_timeout_ms = 1400\n", 2, "pg", "query_timeout_ms"),
    ("connect-deadline-past-stale", "[pg]\nstale_after_ms = 1000\nconnect_timeout_ms = 900\n", 3, "pg",
     "connect_timeout_ms"),
    ("peer-fresh-not-above-interval", "[peers]\ninterval_ms = 500\nfresh_ms = 600\n", 3, "peers", "fresh_ms"),
    # libpq cannot parse it (issue 17 item 14)
    ("conninfo-bad-percent", "[pg]\npoll_interval_ms = 200\nconninfo = postgresql://app:Sup3r%zzSecret@db1/app\n", 3,
     "pg", "conninfo"),
    # a line longer than 8 kB (issue 17 item 13): the key is still named
    ("line-too-long", "[pg]\nconninfo = host=/tmp application_name=" + "x" * 9000 + "\n", 2, "pg", "conninfo"),
]

# a conninfo of a node behind TLS with its certificate paths: longer than inih's 200-byte lines
LONG_CONNINFO = ("host=pg-main-01.db.eu-west-1.internal.example.com,pg-main-02.db.eu-west-1.internal.example.com "
                 "port=5432,5432 dbname=postgres user=pgcheckd sslmode=verify-full "
                 "sslrootcert=/etc/pgcheckd/tls/internal-root-ca-2026.crt "
                 "sslcert=/etc/pgcheckd/tls/pgcheckd-client-pg-main-01.crt "
                 "sslkey=/etc/pgcheckd/tls/pgcheckd-client-pg-main-01.key target_session_attrs=any")


def test_check_config_accepts_every_documented_key(pgcheckd_bin, tmp_path):
    path = tmp_path / "good.ini"
    path.write_text(GOOD.format(port=15480))
    rc, out, err = cl.pgcheckd_check_config(path)
    assert rc == 0, f"`pgcheckd -t -c {path}` exited {rc}: stdout {out!r} stderr {err!r}"


@pytest.mark.parametrize("text,line,section,key", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_config_rejects_bad_file_naming_file_line_and_key(pgcheckd_bin, tmp_path, text, line, section, key):
    path = tmp_path / "bad.ini"
    path.write_text(text)
    rc, out, err = cl.pgcheckd_check_config(path)
    assert rc == 2, f"`pgcheckd -t` on a bad file exited {rc} (want 2); stderr {err!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"want one error line on stderr, got {err!r}"
    # "FILE:LINE: [section] key: message", optionally after the conventional "pgcheckd: " prefix
    want = re.compile(rf"^(pgcheckd: )?{re.escape(str(path))}:{line}: \[{re.escape(section)}\] {re.escape(key)}: \S.*$")
    assert want.match(lines[0]), f"error line {lines[0]!r} does not match '{path}:{line}: [{section}] {key}: ...'"


def test_check_config_accepts_long_lines(pgcheckd_bin, tmp_path):
    path = tmp_path / "long.ini"
    options = "weight 100 check inter 200ms rise 1 fall 1 on-marked-down shutdown-sessions agent-check " \
              "agent-inter 200ms " + " ".join(f"tfo on-error mark-down observe layer4 error-limit {n}" for n in range(20))
    path.write_text(f"[pg]\nconninfo = {LONG_CONNINFO}\n[haproxy]\nadd_server_options = {options}\n")
    rc, out, err = cl.pgcheckd_check_config(path)
    assert rc == 0, (f"`pgcheckd -t` on a {len(LONG_CONNINFO)}-byte conninfo and {len(options)}-byte "
                     f"add_server_options exited {rc}: {err.strip()!r}")


@pytest.mark.parametrize("conninfo,secret", [
    ("postgresql://app:Sup3r%zzSecret@db1/app", "zzSecret"),
    ("postgresql://app:Sup3r@Secret@db1/app", "Secret"),
    ("host=/tmp user=app password=Sup3r Secret", "Secret"),
], ids=["bad-percent", "unencoded-at", "unquoted-space"])
def test_check_config_rejects_bad_conninfo_without_showing_it(pgcheckd_bin, tmp_path, conninfo, secret):
    path = tmp_path / "secret.ini"
    path.write_text(f"[pg]\nconninfo = {conninfo}\n")
    rc, out, err = cl.pgcheckd_check_config(path)
    assert rc == 2, f"`pgcheckd -t` accepted conninfo {conninfo!r} (exit {rc}); stdout {out!r}"
    assert secret not in err and secret not in out, f"`pgcheckd -t` shows the password: {err.strip()!r}"
    assert re.match(rf"^(pgcheckd: )?{re.escape(str(path))}:2: \[pg\] conninfo: \S", err), err


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
def test_semicolon_in_conninfo_reaches_libpq_whole(cluster, report):
    """A conninfo value with ' ;' in it (as a password may have) reaches libpq whole: the session's
    application_name, set in the conninfo, is seen by PostgreSQL as written."""
    c = cluster
    agent = c.agents[0]
    pg = c.pg[0]
    name = "pgcheckd ;probe #1"
    conninfo = agent.conf["pg"]["conninfo"] + f" application_name='{name}'"
    log_before = len(agent.log())
    agent.write_conf({"pg": {"conninfo": conninfo}})
    rc, out, err = cl.pgcheckd_check_config(agent.ini)
    assert rc == 0, f"`pgcheckd -t` rejected {conninfo!r}: {err.strip()!r}"
    agent.sighup()

    def seen():
        rows = pg.sql("SELECT application_name FROM pg_stat_activity WHERE backend_type = 'client backend'")
        return name in [r[0] for r in rows]
    cl.wait_until(seen, 10, desc=f"a pgcheckd session with application_name {name!r}; pgcheckd log: "
                                 f"{agent.log()[log_before:]!r}")
    assert agent.ask("health").startswith("up"), agent.log()[log_before:]


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
@pytest.mark.parametrize("conninfo,secret", [
    ("postgresql://app:Sup3r%zzSecret@127.0.0.1:1/app", "zzSecret"),
    ("postgresql://app:Sup3r@Secret@127.0.0.1:1/app", "Secret"),
], ids=["bad-percent", "unencoded-at"])
def test_reload_with_bad_conninfo_keeps_old_config_and_logs_no_secret(cluster, report, conninfo, secret):
    c = cluster
    agent = c.agents[0]
    good = agent.ini.read_text()
    assert agent.ask("health").startswith("up")
    log_before = len(agent.log())
    agent.write_conf({"pg": {"conninfo": conninfo}})
    agent.sighup()
    time.sleep(2.0)  # long enough for a reload, a connect attempt and its log line
    new_log = agent.log()[log_before:]
    report(f"log after the reload: {new_log.strip()!r}")
    assert secret not in new_log, f"the log shows the password: {new_log!r}"
    assert f"{agent.ini}:" in new_log and "[pg] conninfo" in new_log, f"the reload error names no file:line key: {new_log!r}"
    assert agent.running()
    assert agent.ask("health").startswith("up"), "a rejected reload changed the running configuration"
    agent.write_conf(text=good)


@pytest.mark.cluster_conf(replicas=0, haproxy=False)
@pytest.mark.parametrize("bad,key", [
    ("[pg]\nconnect_timeout_ms = 1400\n", "[pg] connect_timeout_ms"),
    ("[peers]\ninterval_ms = 2000\n", "[peers] interval_ms"),
], ids=["connect-deadline-past-stale", "peer-fresh-not-above-interval"])
def test_reload_with_deadline_past_its_limit_keeps_old_config(cluster, report, bad, key):
    """A reload whose deadlines cannot fit inside the stale (or fresh) limit is refused with file:line
    and key; the default_request change in the same file is not applied."""
    c = cluster
    agent = c.agents[0]  # the primary: a silent client gets default_request 'replica' -> down #is-primary

    def silent_is_down_primary():
        words = agent.ask("").split()
        return "down" in words and "#is-primary" in words
    assert silent_is_down_primary()
    good = agent.ini.read_text()
    text = good.replace("[agent]\n", "[agent]\ndefault_request = primary\n", 1) + "\n" + bad
    bad_line = len(text.splitlines())
    log_before = len(agent.log())
    agent.write_conf(text=text)
    agent.sighup()
    new_log = cl.wait_until(lambda: f"{agent.ini}:{bad_line}: {key}:" in agent.log()[log_before:]
                            and agent.log()[log_before:], 5, desc=f"the log to name {agent.ini}:{bad_line}: {key}")
    report("reload error logged: " + " | ".join(l for l in new_log.splitlines() if str(agent.ini) in l))
    for _ in range(5):
        assert silent_is_down_primary(), "a refused reload changed the running configuration"
        time.sleep(0.05)
    assert agent.running()
    agent.write_conf(text=good)


def test_reload_with_broken_file_keeps_old_config(cluster, report):
    """A good reload changes the answer to a silent client (default_request); a broken file then
    changes nothing, the process stays up and the log names file:line."""
    c = cluster
    agent = c.agents[0]  # the primary: default 'replica' -> down #is-primary, 'primary' -> up 100%
    assert agent.ask("") == "down #is-primary"

    agent.write_conf({"agent": {"default_request": "primary"}})
    agent.sighup()
    cl.wait_until(lambda: agent.ask("") == "100% up", 5, desc="default_request = primary to take effect")

    good = agent.ini.read_text()
    lines = good.splitlines()
    # Broken: default_request back to replica (visible if applied) and a bad value further down.
    lines = [("default_request = replica" if l.startswith("default_request") else l) for l in lines]
    lines += ["", "[weight]", "floor_pct = 1000"]
    bad_line = len(lines)
    log_before = len(agent.log())
    agent.write_conf(text="\n".join(lines) + "\n")
    agent.sighup()
    new_log = cl.wait_until(lambda: f"{agent.ini}:{bad_line}" in agent.log()[log_before:] and agent.log()[log_before:],
                            5, desc=f"the log to name {agent.ini}:{bad_line}")
    report("reload error logged: " + " | ".join(l for l in new_log.splitlines() if str(agent.ini) in l))
    assert "floor_pct" in new_log, f"the reload error does not name the key: {new_log!r}"
    time.sleep(0.5)
    assert agent.running(), "pgcheckd exited after a reload with a broken file"
    for _ in range(5):
        assert agent.ask("") == "100% up", "a broken reload changed the running configuration"
        time.sleep(0.05)
    assert agent.ask("primary") == "up 100%"

    agent.write_conf(text=good.replace("default_request = primary", "default_request = replica"))
    agent.sighup()
    cl.wait_until(lambda: agent.ask("") == "down #is-primary", 5, desc="a good reload after a broken one")
