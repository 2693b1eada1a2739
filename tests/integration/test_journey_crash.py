"""Crash test for journeys: SIGKILL at random moments while events enter
customers into a journey, timers fire (the test clock moves) and the
dispatcher delivers webhooks to a real receiver. Afterwards:
  - every acknowledged entry ran the journey exactly once (no instance lost
    or applied twice): each customer has exactly the two messages of the
    journey, and the report counts each entry once;
  - no timer was lost: once the clock passes every wait, nobody is left in
    the journey;
  - every message reached the receiver, and a resend after a crash carried
    the same message id (the receiver may see an id twice, never a new id
    for the same step).
JOURNEY_CRASH_ROUNDS (default 8) sets the number of kill/restart rounds."""
import os
import random
import threading
import time

from journeys import SECRET
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

ROUNDS = int(os.environ.get("JOURNEY_CRASH_ROUNDS", "8"))

JOURNEY = {
    "key": "crash_probe", "name": "crash probe",
    "entry": {"event": "CrashEnter", "reentry": "never"},
    "nodes": [
        {"id": "w1", "type": "wait", "duration": "1h", "next": "s1"},
        {"id": "s1", "type": "send", "channel": "hook", "template": "t1", "next": "we"},
        {"id": "we", "type": "wait_event", "event": "CrashDone", "timeout": "2h",
         "on_event": "s2", "on_timeout": "s2"},
        {"id": "s2", "type": "send", "channel": "hook", "template": "t2", "next": "end"},
        {"id": "end", "type": "exit"},
    ],
}


def setup(srv, rx):
    st, b = srv.api("PUT", "/api/v1/channels/hook", {"kind": "webhook", "url": rx.url("/hook"), "secret": SECRET})
    assert st == 200, b
    for k in ("t1", "t2"):
        st, b = srv.api("PUT", f"/api/v1/templates/{k}", {"channel": "hook", "title": k, "body": k + " {{profile.name | default: \"x\"}}"})
        assert st == 200, b
    st, b = srv.api("POST", "/api/v1/journeys", JOURNEY)
    assert st in (200, 201) and b.get("valid"), b
    st, b = srv.api("POST", "/api/v1/journeys/crash_probe/publish")
    assert st == 200, b


def enter_load(srv, rng, acked, rnd, stop):
    n = 0
    while not stop.is_set():
        batch = [track(f"jc-{rnd}-{n + i}", "CrashEnter", {"r": rnd}, track_id=rng.randrange(1 << 31))
                 for i in range(5)]
        try:
            st, _, _ = srv.sa_post(batch)
        except OSError:
            return
        if st == 200:
            acked.extend(r["distinct_id"] for r in batch)
        n += 5
        time.sleep(rng.random() * 0.01)


def clock_load(srv, rng, stop):
    while not stop.is_set():
        try:
            srv.api("POST", "/api/v1/clock", {"advance": rng.choice(["10m", "30m", "1h"])})
        except OSError:
            return
        time.sleep(0.02 + rng.random() * 0.05)


def test_journey_kill9():
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    acked = []
    with Receiver() as rx:
        rx.set_default(200)
        srv = Server(extra=["--test-clock"], partitions=2)
        try:
            srv.start()
            setup(srv, rx)
            for rnd in range(ROUNDS):
                if rnd:
                    srv.start()
                stop = threading.Event()
                ts = [threading.Thread(target=enter_load, args=(srv, random.Random(rng.random()), acked, rnd, stop)),
                      threading.Thread(target=clock_load, args=(srv, random.Random(rng.random()), stop))]
                for t in ts:
                    t.start()
                time.sleep(0.2 + rng.random() * 0.6)
                srv.kill9()
                stop.set()
                for t in ts:
                    t.join()
            srv.start()
            before = srv.api("GET", "/api/v1/clock")[1]["now_ms"]
            st, after = srv.api("POST", "/api/v1/clock", {"advance": "4h"})
            check(st == 200 and after["now_ms"] >= before + 4 * 3600000, "the clock moved 4 h", (st, after, before))

            def waits_passed():
                st, rep = srv.api("GET", "/api/v1/journeys/crash_probe/report")
                nodes = {n["id"]: n for n in rep.get("nodes", [])} if st == 200 else {}
                return nodes and nodes["w1"]["waiting"] == 0
            check(srv.wait_for(waits_passed, timeout=30), "every 1 h wait fired after the clock moved")
            # instances that only now passed w1 wait 2 h for CrashDone: move again
            srv.api("POST", "/api/v1/clock", {"advance": "4h"})
            users = list(dict.fromkeys(acked))

            def all_done():
                st, rep = srv.api("GET", "/api/v1/journeys/crash_probe/report")
                nodes = {n["id"]: n for n in rep.get("nodes", [])} if st == 200 else {}
                return rep if nodes.get("end", {}).get("entered", 0) >= len(users) else None
            rep = srv.wait_for(all_done, timeout=60)
            check(rep is not None, "every acknowledged entry reached the end once the clock passed the waits",
                  srv.api("GET", "/api/v1/journeys/crash_probe/report")[1])
            rep = rep or {}
            # records durable but not acknowledged (the answer was lost) enter too
            check(rep.get("entered", 0) >= len(users), "every acknowledged entry counted",
                  (rep.get("entered"), len(users)))
            sample = users if len(users) <= 400 else rng.sample(users, 400)
            bad_msgs, left = [], []
            outbox_ids = set()
            for u in sample:
                st, m = srv.api("GET", f"/api/v1/messages?user={u}")
                msgs = m.get("messages", []) if st == 200 else []
                outbox_ids.update(x["id"] for x in msgs)
                if sorted(x["node"] for x in msgs) != ["s1", "s2"]:
                    bad_msgs.append((u, [x.get("node") for x in msgs]))
                st, prof = srv.user(u)
                if st == 200 and prof["journeys"]:
                    left.append(u)
            check(not bad_msgs, "each customer has exactly the two journey messages", bad_msgs[:5])
            check(not left, "no customer is left waiting (no timer lost)",
                  (left[:3], [srv.user(u)[1]["journeys"] for u in left[:2]], srv.api("GET", "/api/v1/clock")[1]))
            ok = srv.wait_for(lambda: outbox_ids <= set(rx.delivered_ids()), timeout=30)
            check(ok, "every message reached the receiver", len(outbox_ids - set(rx.delivered_ids())))
            if len(sample) == len(users):
                stray = {r.message_id for r in rx.requests()} - outbox_ids
                check(not stray, "the receiver saw no message id the outbox does not know", list(stray)[:5])
            dup = len(rx.requests()) - len({r.message_id for r in rx.requests()})
            print(f"journey crash test: {ROUNDS} kill -9 rounds, {len(users)} acknowledged entries, "
                  f"{len(rx.requests())} deliveries, {dup} re-deliveries with the same id")
            check(len(users) > ROUNDS * 5, "the test acknowledged a meaningful number of entries", len(users))
        finally:
            srv.cleanup()


if __name__ == "__main__":
    run_case(test_journey_kill9)
    finish()
