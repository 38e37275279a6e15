/*
 * conf_keys.h: the one table of every configuration key.
 * The parser, the defaults, `pgcheckd --help-config`, conf/pgcheckd.ini and the README's key list
 * all come from this table (or are checked against it by `make check`); add a key here and nowhere else.
 *
 * X(section, name, type, default, min, max, reloadable, enum_names, help)
 *   type: INT (integer, unit in the name), BYTES (integer with optional kB/MB/GB/TB), DOUBLE, BOOL,
 *         STR (text; max is its longest length in bytes, 0 for CONF_STR_MAX - 1), ENUM (one of
 *         enum_names), LISTEN (HOST:PORT; min 1 means it may not be empty), ADDRLIST (HOST:PORT, ...),
 *         APILIST (/socket/path or HOST:PORT, ...), CIDRLIST (ADDRESS[/BITS], ...).
 */
#ifndef PGCHECKD_CONF_KEYS_H
#define PGCHECKD_CONF_KEYS_H

/* the table is aligned by hand: clang-format would fold it */
/* clang-format off */

#define CONF_KEYS(X)                                                                               \
	X(agent, listen, LISTEN, "*:5480", 1, 0, false, NULL,                                      \
	  "Address and port of the agent port (HAProxy agent-check and tcp-check). "               \
	  "'*:PORT' for every IPv4 address, '[::]:PORT' for IPv6, 'HOST:PORT' for one address.")    \
	X(agent, default_request, ENUM, "replica", 0, 0, true, conf_request_names,                \
	  "Request answered when a client sends nothing (HAProxy agent-check without agent-send).") \
	X(agent, allow, CIDRLIST, "127.0.0.0/8, ::1", 0, 0, true, NULL,                            \
	  "Client addresses the TCP ports (agent, HTTP, role ports) answer: ADDRESS[/BITS], ... "  \
	  "A connection from elsewhere is closed at accept, before a byte is read (counted; "      \
	  "logged once a minute per address). Loopback only by default: add the addresses of "     \
	  "your HAProxy hosts and of the peers. Empty allows every address.")                       \
	X(agent, max_clients, INT, "256", 1, 65536, true, NULL,                                    \
	  "Most client connections served at once. At the cap, a new connection takes the slot "   \
	  "of the oldest one that has not finished its request (none: it is closed at once), so "  \
	  "idle connections cannot lock checks out.")                                              \
	X(agent, max_clients_per_source, INT, "64", 1, 65536, true, NULL,                          \
	  "Most connections from one address at once; past it a new one takes the slot of that "   \
	  "address's oldest unfinished one. Keeps one flooding address from holding every slot.")  \
	X(agent, request_idle_ms, INT, "20", 1, 1000, true, NULL,                                  \
	  "A request without a newline ends after this many ms without new bytes (HAProxy's "      \
	  "runtime API cannot put a newline into agent-send).")                                    \
	X(agent, request_wait_ms, INT, "200", 1, 10000, true, NULL,                                \
	  "A client that has sent nothing for this long gets default_request (HAProxy's "          \
	  "agent-check without agent-send), weight first ('100% up'): a check that sent a "        \
	  "request and expects '^up' never takes it for its own answer, however late.")            \
	X(agent, client_timeout_ms, INT, "500", 10, 60000, true, NULL,                             \
	  "Deadline of one client connection, from accept to answer.")                            \
	X(agent, shutdown_drain_ms, INT, "1000", 0, 600000, true, NULL,                            \
	  "On SIGTERM, answer 'up 0%' (drain) where the answer would be up for this long, then "   \
	  "exit. A second SIGTERM exits at once.")                                                 \
	X(agent, http, BOOL, "true", 0, 0, true, NULL,                                             \
	  "Whether the agent port also speaks HTTP (told apart by its first bytes). Off: only the " \
	  "agent line protocol there; http_listen is not affected.")                               \
	X(agent, http_listen, LISTEN, "", 0, 0, false, NULL,                                       \
	  "An extra port that speaks only HTTP (the agent port speaks it too); empty for none.")    \
	X(agent, primary_port, INT, "0", 0, 65535, false, NULL,                                    \
	  "A port on the listen address that is open only while the node is a writable primary "   \
	  "(for plain TCP checks: 'check port N'); 0 for none.")                                   \
	X(agent, replica_port, INT, "0", 0, 65535, false, NULL,                                    \
	  "A port on the listen address that is open only while the node is a replica fit for "    \
	  "reads (streaming, under the lag limits); 0 for none.")                                  \
	X(agent, location, STR, "", 0, 255, true, NULL,                                            \
	  "Where this node is, as labels KEY=VALUE separated by commas ('dc=fra, zone=b'). A read " \
	  "request with prefer=KEY=VALUE (agent-send 'replica prefer=dc=fra') keeps its weight "   \
	  "only on nodes whose location has that label; on the others it gets [weight] floor_pct " \
	  "(still up, so reads fail over to them). Empty: no label, nothing preferred here.")      \
	X(agent, maxconn_pct, INT, "0", 0, 100, true, NULL,                                        \
	  "When above 0, agent replies that are up add maxconn:N, N being this share of "          \
	  "PostgreSQL's usable connection slots, so HAProxy queues instead of PostgreSQL refusing " \
	  "('too many clients'). With several HAProxy instances, give each its share.")             \
	X(admin, socket, STR, "/run/pgcheckd/pgcheckd.sock", 0, 0, false, NULL,                    \
	  "Unix socket for 'pgcheckd ctl' and 'pgcheckd check' (mode 0600); empty for none.")       \
	X(tls, cert_file, STR, "", 0, 0, true, NULL,                                               \
	  "PEM certificate (then its chain) that the TLS ports present; read again on reload, "    \
	  "and a file that cannot be used keeps the running certificate.")                        \
	X(tls, key_file, STR, "", 0, 0, true, NULL,                                                \
	  "PEM private key of cert_file, not encrypted. Refused (at start and on reload) when "    \
	  "group or others may read it: chmod 0600, owned by pgcheckd's user.")                    \
	X(tls, ca_file, STR, "", 0, 0, true, NULL,                                                 \
	  "PEM CA certificates that sign the clients' certificates (with verify_client = "         \
	  "required; HAProxy: 'crt' on the server line). Empty: none.")                            \
	X(tls, verify_client, ENUM, "none", 0, 0, true, conf_verify_names,                         \
	  "'required': a client must present a certificate signed by ca_file, or its handshake "   \
	  "fails; 'none': every client [agent] allow lets in.")                                    \
	X(tls, agent, BOOL, "false", 0, 0, false, NULL,                                            \
	  "TLS on the agent port, for HAProxy's 'tcp-check connect ssl' and 'check-ssl'. HAProxy's " \
	  "agent-check has no TLS and cannot talk to such a port: see the README.")                \
	X(tls, http, BOOL, "false", 0, 0, false, NULL,                                             \
	  "TLS on [agent] http_listen, for HAProxy's httpchk with 'check-ssl'.")                   \
	X(pg, conninfo, STR, "", 0, 0, true, NULL,                                                 \
	  "libpq connection string or URI ('host=/run/postgresql dbname=postgres', "               \
	  "'service=main'); empty uses libpq's defaults and PG* variables. The role needs "        \
	  "pg_monitor. Checked with libpq's parser when the file is read; in a URI, write '@', "   \
	  "'/', '?' and ':' in a user name or password as %40, %2F, %3F and %3A.")                \
	X(pg, poll_interval_ms, INT, "200", 100, 60000, true, NULL,                                \
	  "Time between two samples (one SELECT each).")                                           \
	X(pg, query_timeout_ms, INT, "500", 50, 60000, true, NULL,                                 \
	  "Deadline of one sample; past it the node is down (timeout); the query is waited for "   \
	  "30 s more before the connection is replaced. Also the session's statement_timeout.")    \
	X(pg, connect_timeout_ms, INT, "1000", 50, 60000, true, NULL,                              \
	  "Deadline of one connection attempt; past it the node is down (connect-timeout); an "    \
	  "attempt the server accepted is waited for 30 s more, so attempts never pile up.")       \
	X(pg, reconnect_max_ms, INT, "2000", 100, 600000, true, NULL,                              \
	  "Reconnect attempts back off from poll_interval_ms, doubling up to this.")              \
	X(pg, data_directory, STR, "", 0, 0, true, NULL,                                           \
	  "PostgreSQL's data directory on this host, watched with inotify (pgcheckd needs read "    \
	  "access: initdb -g and pgcheckd in the server's group): a fast or smart shutdown "        \
	  "beginning (postmaster.pid says stopping) makes the node down at once (pg-stopping), "   \
	  "and the end of recovery (a promotion) is sampled within milliseconds instead of at "     \
	  "the next poll. A directory whose pg_control is not the server's (checked at the first " \
	  "good sample) is named in the log and not watched. Empty: polls alone.")                 \
	X(pg, stale_after_ms, INT, "1500", 200, 600000, true, NULL,                                \
	  "A sample older than this counts as none: every request is down (stale).")               \
	X(replica, max_lag_bytes, BYTES, "16MB", 0, 1099511627776, true, NULL,                     \
	  "A replica whose replay is this far behind the primary's WAL end is over the limit. "    \
	  "0 disables the byte limit.")                                                           \
	X(replica, max_lag_s, DOUBLE, "10", 0, 86400, true, NULL,                                  \
	  "A replica whose replay is this many seconds behind is over the limit (0 when replay "   \
	  "has caught up with what was received). 0 disables the time limit.")                    \
	X(replica, recover_pct, INT, "50", 0, 100, true, NULL,                                     \
	  "Hysteresis: a replica that went over a lag limit is back only when under this "         \
	  "percentage of every limit.")                                                            \
	X(replica, over_lag, ENUM, "down", 0, 0, true, conf_over_lag_names,                        \
	  "What a replica over the lag limit answers: 'down' (down #lag ...) or 'drain' (up 0%); "  \
	  "'keep-best': down, except that when every replica the fresh peers tell of is over the " \
	  "limit too, the least behind stays up at the floor weight (keep-best lag ...).")        \
	X(replica, receiver_silence_max_ms, INT, "60000", 0, 3600000, true, NULL,                  \
	  "A replica whose WAL receiver has heard nothing from the primary for this long is "      \
	  "disconnected (down). 0 disables the silence limit; a receiver that is not streaming "   \
	  "is always disconnected.")                                                               \
	X(weight, floor_pct, INT, "10", 1, 100, true, NULL,                                        \
	  "A replica that is up never gets a weight below this (unless drained).")                \
	X(weight, step_pct, INT, "10", 1, 100, true, NULL,                                         \
	  "Weights are rounded to multiples of this, so HAProxy is not told about noise.")        \
	X(weight, smoothing_ms, INT, "2000", 0, 600000, true, NULL,                                \
	  "Time constant of the weight's exponential smoothing; 0 turns smoothing off.")          \
	X(weight, lag_soft_bytes, BYTES, "1MB", 0, 1099511627776, true, NULL,                      \
	  "Replica weight falls linearly from 100% at this lag to floor_pct at max_lag_bytes.")    \
	X(weight, lag_soft_s, DOUBLE, "1", 0, 86400, true, NULL,                                   \
	  "Replica weight falls linearly from 100% at this lag to floor_pct at max_lag_s.")        \
	X(weight, load_low_per_cpu, DOUBLE, "0.5", 0, 1000, true, NULL,                            \
	  "Host load average (1 min) per CPU under which load does not lower the weight.")         \
	X(weight, load_high_per_cpu, DOUBLE, "2", 0, 1000, true, NULL,                             \
	  "Host load average per CPU at which the load factor reaches its minimum.")              \
	X(weight, primary_read_pct, INT, "100", 0, 100, true, NULL,                                \
	  "Weight of the primary for 'read-only' requests (before load scaling).")                \
	X(peers, addresses, ADDRLIST, "", 0, 0, true, NULL,                                        \
	  "The other nodes' pgcheckd agent ports (HOST:PORT, comma-separated). With peers, a "      \
	  "primary that sees a peer primary on a newer timeline, or on its own timeline (two "       \
	  "promotions), refuses writes (down #fenced ...). Names resolve off the event loop when " \
	  "the file is read; until one does, its peer counts as unreachable.")                     \
	X(peers, interval_ms, INT, "200", 50, 60000, true, NULL,                                   \
	  "Time between two reads of every peer's state.")                                         \
	X(peers, timeout_ms, INT, "200", 10, 60000, true, NULL,                                    \
	  "Deadline of one read of a peer's state.")                                               \
	X(peers, fresh_ms, INT, "2000", 100, 600000, true, NULL,                                   \
	  "A peer's state older than this is forgotten: an unreachable peer fences no one.")       \
	X(peers, isolation_fence_ms, INT, "0", 0, 3600000, true, NULL,                             \
	  "When above 0, a primary that has heard from no peer and had no streaming replica for "   \
	  "this long refuses writes (down #fenced isolated). Off by default: it also fences a "     \
	  "lone primary whose peers are merely down.")                                            \
	X(peers, handover_ms, INT, "2000", 0, 600000, true, NULL,                                  \
	  "A promoted primary answers 'primary' down #handover while a peer primary on an older "   \
	  "timeline still answers that it takes writes (its last read answered, not fenced), so "  \
	  "that HAProxy never sees two write targets; the old one fences itself within a peer "     \
	  "read of the promotion (both alert each other). At most this long, then up (the old one " \
	  "may not list this node as a peer): logged. 0: no wait.")                                 \
	X(peers, handover_settle_ms, INT, "250", 0, 60000, true, NULL,                             \
	  "After the superseded primary answered fenced, the new one waits this much longer: "      \
	  "HAProxy sees the old one DOWN only at its next check of it (inter 200ms in "              \
	  "conf/haproxy.cfg) unless the old node pushes ([haproxy] push_servers). Only after a "     \
	  "handover wait; 0 where every node pushes.")                                              \
	X(peers, fenced_reads, BOOL, "false", 0, 0, true, NULL,                                    \
	  "Whether a fenced primary still answers 'read-only' up.")                               \
	X(peers, key_file, STR, "", 0, 0, true, NULL,                                              \
	  "A file holding the key every node shares (at least 32 bytes; make one with 'openssl "     \
	  "rand -hex 32'), mode 0600 or stricter. With it, a peer's answer counts only with a MAC "   \
	  "(HMAC-SHA256) over this read's fresh challenge, and 'peer-state' is answered only to a "   \
	  "reader that proves it holds the key. Empty: a peer's answer is believed as sent. Read "    \
	  "at start and at reload.")                                                               \
	X(haproxy, runtime_api, APILIST, "", 0, 0, true, NULL,                                     \
	  "HAProxy runtime API addresses ('level admin'): socket paths or HOST:PORT, "             \
	  "comma-separated. With backends below, this node registers itself into every HAProxy "  \
	  "listed, keeps the registration true and withdraws on shutdown. Empty: no registration. "  \
	  "'pgcheckd ctl drain --wait' asks these (with advertise_addr) whether the node is drained.") \
	X(haproxy, template_backends, STR, "", 0, 0, true, NULL,                                   \
	  "BACKEND:PREFIX pairs (comma-separated) whose 'server-template PREFIX ...' slots this "   \
	  "node may claim, e.g. 'be_primary:pg, be_replicas:pg'.")                                  \
	X(haproxy, dynamic_backends, STR, "", 0, 0, true, NULL,                                    \
	  "BACKEND:REQUEST pairs (comma-separated) where this node adds itself with 'add server', "  \
	  "its agent asked REQUEST, e.g. 'be_replicas:replica'.")                                   \
	X(haproxy, push_servers, STR, "", 0, 0, true, NULL,                                        \
	  "BACKEND/SERVER:REQUEST (comma-separated) that this node takes out at once ('set server "  \
	  "B/S health down' on every runtime_api) when it becomes unfit for REQUEST; SERVER '*' is "  \
	  "the server there with this node's advertise_addr and advertise_pg_port (a registered "    \
	  "template slot), e.g. 'be_primary/node1:primary, be_replicas/*:replica'. dynamic_backends "  \
	  "are pushed too. HAProxy's own check brings the server back; a push never does. A weight " \
	  "answered for REQUEST that drops to 0 or by [weight] step_pct or more is pushed too ('set " \
	  "server B/S weight N%', where HAProxy shows more); a raise never is (the agent check).")   \
	X(haproxy, advertise_addr, STR, "", 0, 0, true, NULL,                                      \
	  "The literal IP address HAProxy reaches this node at (required to register, and for "    \
	  "'ctl drain --wait': HAProxy's servers at this address and advertise_pg_port).")          \
	X(haproxy, advertise_pg_port, INT, "5432", 1, 65535, true, NULL,                           \
	  "The PostgreSQL port HAProxy sends clients to.")                                         \
	X(haproxy, advertise_agent_port, INT, "0", 0, 65535, true, NULL,                           \
	  "The pgcheckd port HAProxy checks; 0 for the [agent] listen port.")                      \
	X(haproxy, free_slot, LISTEN, "127.0.0.1:1", 1, 0, true, NULL,                             \
	  "The address:port of an unclaimed template slot, as in 'server-template pg 1-10 "         \
	  "127.0.0.1:1 disabled'; withdrawing puts a slot back to it.")                            \
	X(haproxy, add_server_options, STR,                                                        \
	  "weight 100 check inter 200ms rise 1 fall 1 on-marked-down shutdown-sessions agent-check agent-inter 200ms", \
	  0, CONF_ADD_SERVER_OPTIONS_MAX, true, NULL,                                              \
	  "Server options for 'add server' (dynamic backends); port, agent-port and agent-send are " \
	  "added by pgcheckd.")                                                                    \
	X(haproxy, reconcile_ms, INT, "2000", 200, 3600000, true, NULL,                            \
	  "Time between two checks that the registration is still true (an HAProxy reload or "     \
	  "restart forgets runtime changes).")                                                     \
	X(haproxy, timeout_ms, INT, "1000", 50, 60000, true, NULL,                                 \
	  "Deadline of one runtime API command.")                                                  \
	X(scaleout, backend, STR, "", 0, 0, true, NULL,                                            \
	  "The backend whose load this node watches (read from the first [haproxy] runtime_api, "   \
	  "'show stat'); empty: no scale-out controller. Enable it on one node only.")             \
	X(scaleout, interval_ms, INT, "1000", 100, 600000, true, NULL,                             \
	  "Time between two load readings.")                                                       \
	X(scaleout, window_s, INT, "30", 1, 86400, true, NULL,                                     \
	  "The load is the average over this window; nothing is decided before it is full.")       \
	X(scaleout, high_sessions, DOUBLE, "20", 0, 1000000, true, NULL,                           \
	  "Sessions (current + queued) per up server at or above which the pool grows.")           \
	X(scaleout, low_sessions, DOUBLE, "0", 0, 1000000, true, NULL,                             \
	  "Sessions per up server at or below which the pool shrinks (with down_command); 0: never.") \
	X(scaleout, up_command, STR, "", 0, 0, true, NULL,                                        \
	  "Command (run with /bin/sh -c) that creates a replica. It gets PGCHECKD_ACTION, "         \
	  "PGCHECKD_BACKEND, PGCHECKD_POOL_SIZE, PGCHECKD_LOAD, PGCHECKD_MAX_POOL and "             \
	  "PGCHECKD_RUNTIME_API in its environment; its output is logged.")                        \
	X(scaleout, down_command, STR, "", 0, 0, true, NULL,                                      \
	  "Command that retires a replica, as up_command; empty: the pool never shrinks.")          \
	X(scaleout, cooldown_s, INT, "300", 0, 86400, true, NULL,                                  \
	  "After a command starts, no other runs for this long (nor while it runs).")              \
	X(scaleout, max_pool, INT, "8", 1, 1000, true, NULL,                                       \
	  "Up servers at which the pool stops growing.")                                           \
	X(scaleout, min_pool, INT, "1", 0, 1000, true, NULL,                                       \
	  "Up servers at which the pool stops shrinking.")                                         \
	X(scaleout, dry_run, BOOL, "false", 0, 0, true, NULL,                                      \
	  "Log what would be run, and run nothing.")                                               \
	X(http, basic_auth_file, STR, "", 0, 0, true, NULL,                                        \
	  "A file holding 'user:password' (mode 0600 or stricter, at least 16 bytes): with it, "  \
	  "what [http] protect names needs HTTP Basic authentication with that pair (401 "       \
	  "otherwise).")                                                                           \
	X(http, token_file, STR, "", 0, 0, true, NULL,                                             \
	  "A file holding a bearer token (mode 0600 or stricter, at least 16 bytes; 'openssl "     \
	  "rand -hex 32'): with it, 'Authorization: Bearer TOKEN' proves who asks too.")          \
	X(http, protect, STR, "status, metrics, bodies", 0, 0, true, NULL,                         \
	  "What needs a credential when basic_auth_file or token_file is set: status, metrics, "   \
	  "bodies (a health path's JSON; its status code stays open to HAProxy), checks (the "      \
	  "health paths themselves).")                                                             \
	X(dcs, mode, ENUM, "off", 0, 0, true, conf_dcs_mode_names,                                 \
	  "off: no DCS. patroni: a writable primary answers 'primary' up only while Patroni's "     \
	  "leader key in etcd (<namespace>/<scope>/leader) names this node ([dcs] name), as read "   \
	  "within fresh_ms; etcd unreachable or silent means down #dcs-unreachable (fail closed). "  \
	  "lease: pgcheckd itself holds that key (value: name) under an etcd lease it keeps "       \
	  "alive, and answers 'primary' up only while it holds it, lease_margin_ms before it can "   \
	  "expire; not on a Patroni cluster.")                                                     \
	X(dcs, endpoints, STR, "http://127.0.0.1:2379", 0, 0, true, NULL,                          \
	  "etcd v3 client URLs (http:// or https://, comma-separated, at most 8); a failed read "   \
	  "moves to the next one.")                                                                \
	X(dcs, scope, STR, "", 0, 0, true, NULL,                                                   \
	  "Patroni's scope (the cluster's name), as in patroni.yml.")                              \
	X(dcs, namespace, STR, "/service/", 0, 0, true, NULL,                                      \
	  "Patroni's namespace, as in patroni.yml.")                                               \
	X(dcs, name, STR, "", 0, 0, true, NULL,                                                    \
	  "This node's Patroni member name (patroni.yml 'name'): the leader key's value when this " \
	  "node leads.")                                                                           \
	X(dcs, interval_ms, INT, "500", 50, 60000, true, NULL,                                     \
	  "Time between two reads of the leader key.")                                             \
	X(dcs, timeout_ms, INT, "1000", 10, 60000, true, NULL,                                     \
	  "Deadline of one read (connection included).")                                           \
	X(dcs, fresh_ms, INT, "3000", 100, 600000, true, NULL,                                     \
	  "What etcd said counts for this long after the read's request was sent; then 'primary' " \
	  "is down #dcs-unreachable until etcd answers again.")                                    \
	X(dcs, lease_ttl_s, INT, "10", 2, 3600, true, NULL,                                        \
	  "Lease mode: the TTL of the lease the key is held under; another node can take the key "  \
	  "only once this node's lease has expired in etcd.")                                      \
	X(dcs, lease_margin_ms, INT, "3000", 0, 3600000, true, NULL,                               \
	  "Lease mode: 'primary' is down this long before the lease can expire (counted from the " \
	  "sending of the grant or keepalive that set it, on this host's monotonic clock). It must " \
	  "cover HAProxy's time to see a down (inter x fall) and the clock rate difference between " \
	  "this host and etcd's leader (lease_ttl_s x 2 x the rate error).")                       \
	X(dcs, ca_file, STR, "", 0, 0, true, NULL,                                                 \
	  "CA certificates that sign etcd's server certificate (https endpoints); empty: the "    \
	  "system's.")                                                                             \
	X(dcs, cert_file, STR, "", 0, 0, true, NULL,                                               \
	  "Client certificate shown to etcd (etcd's --client-cert-auth); empty for none.")         \
	X(dcs, key_file, STR, "", 0, 0, true, NULL,                                                \
	  "The client certificate's private key (mode 0600 or stricter); empty for none.")         \
	X(dcs, username, STR, "", 0, 0, true, NULL,                                                \
	  "etcd user (etcd's authentication: etcdctl user add, auth enable): with password_file, " \
	  "pgcheckd authenticates (/v3/auth/authenticate) and sends the token with every request, " \
	  "again once a token is refused; empty: no authentication.")                             \
	X(dcs, password_file, STR, "", 0, 0, true, NULL,                                           \
	  "A file holding that user's password (mode 0600 or stricter), read at start and reload, " \
	  "never logged; needs username.")                                                         \
	X(log, level, ENUM, "info", 0, 0, true, conf_log_level_names,                              \
	  "Least severe level logged: error, warning, info or debug. Checks are never logged "     \
	  "at info.")                                                                              \
	X(log, syslog, BOOL, "false", 0, 0, false, NULL,                                           \
	  "Log to syslog (daemon facility) instead of standard error.")

/* clang-format on */

#endif
