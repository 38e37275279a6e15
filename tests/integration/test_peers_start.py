"""A primary whose pgcheckd starts with peers configured is not a write target until every peer has been
read once (answered or failed): a peer that holds a newer timeline must have had its say. A relay holds
the peer's answers back 500 ms; in that time the primary answers 'primary' down, never up."""

import time

import cluster as cl
from relay import Relay


def test_a_starting_primary_waits_for_its_peers_first_answers(report):
    c = cl.Cluster(replicas=1).start(haproxy=False)
    with c:
        with Relay(c.agents[1].port, down_delay_s=0.5) as relay:
            a = c.agents[0]
            a.stop()
            a.write_conf({"peers": {"addresses": f"127.0.0.1:{relay.port}", "timeout_ms": "1500",
                                    "interval_ms": "200", "fresh_ms": "4000"}})
            a.start(wait=False)
            a.wait_listening()
            t0 = time.monotonic()
            answers = []
            while time.monotonic() - t0 < 0.4:
                answers.append(a.ask("primary"))
                time.sleep(0.01)
            ups = [x for x in answers if x.startswith("up")]
            cl.wait_until(lambda: a.ask("primary") == "up 100%", 10, desc="the primary up once its peer answered")
            up_after = time.monotonic() - t0
        report(f"{len(answers)} answers in the first 0.4 s: {sorted(set(answers))}; up after {up_after:.2f} s")
        assert len(answers) > 10
        assert not ups, f"the primary answered up before its peer was heard: {ups[:3]}"
        assert "down #peers-unheard" in answers
