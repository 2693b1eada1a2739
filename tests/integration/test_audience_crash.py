"""Crash test for real-time segments: SIGKILL at random moments while events
keep tags and segments current, and once more during the clock pass.
Batches that were in flight at a kill are sent again (same _track_id), so in
the end every batch is stored exactly once and the expected state is known.
Afterwards:
  - membership equals the definition over the acknowledged events, and equals
    a full recompute (a new version published, computed from scratch);
  - every member has exactly one $SegmentEntered, nobody else has one;
  - after the window slides (clock pass, killed in the middle), every member
    has exactly one $SegmentExited.
AUDIENCE_CRASH_ROUNDS (default 6) sets the number of kill/restart rounds."""
import collections
import os
import random
import threading
import time

from wmtest import Server, check, finish, run_case, track

ROUNDS = int(os.environ.get("AUDIENCE_CRASH_ROUNDS", "6"))
USERS = [f"ac{i:04d}" for i in range(1000)]
EVENTS_MAX = 1600  # about 1.6 Pings per customer: some reach 3, a few 5

TAG = {"key": "pings_7d", "kind": "metric", "event": "Ping", "agg": "count", "within": "7d"}
SEG3 = {"key": "ping3", "condition": {"did": "Ping", "count": {">=": 3}, "within": "7d"}}
SEG5 = {"key": "ping5_tag", "condition": {"tag": "pings_7d", "op": ">=", "value": 5}}


def publish(srv, kind, d):
    st, b = srv.api("POST", f"/api/v1/{kind}", d)
    assert st in (200, 201) and b.get("valid"), b
    st, b = srv.api("POST", f"/api/v1/{kind}/{d['key']}/publish")
    assert st == 200, b
    return b["version"]


def computed(srv, kind, key):
    st, b = srv.api("GET", f"/api/v1/{kind}/{key}")
    return st == 200 and b.get("computed")


def members(srv, key):
    out, after = set(), 0
    while True:
        st, b = srv.api("GET", f"/api/v1/segments/{key}/members?ids=login_id&limit=1000&after={after}")
        assert st == 200, (st, b)
        out |= {m["login_id"] for m in b["members"]}
        if not b.get("next"):
            return out
        after = b["next"]


def seg_events(srv, uid, name, key):
    st, b = srv.events(uid, limit=500, id_type="login_id")
    if st != 200:
        return None
    return [e for e in b["events"] if e["event"] == name and e["properties"].get("segment") == key]


def load(srv, rng, state, stop):
    """Posts batches of Ping events; a batch counts once acknowledged."""
    while not stop.is_set():
        batch = state["pending"].pop() if state["pending"] else None
        if batch is None:
            if state["seq"] >= EVENTS_MAX:
                time.sleep(0.01)
                continue
            t = state["t"]
            batch = [track(rng.choice(USERS), "Ping", {"n": state["seq"] + k}, t=t + state["seq"] + k,
                           track_id=100000 + state["seq"] + k) for k in range(rng.randint(1, 6))]
            state["seq"] += len(batch)
        try:
            st, _, _ = srv.sa_post(batch)
        except OSError:
            st = 0
        if st == 200:
            for r in batch:
                state["acked"][r["distinct_id"]] += 1
        else:
            state["pending"].append(batch)
            time.sleep(0.01)


def test_audience_kill9():
    srv = Server(extra=["--test-clock"]).start()
    rng = random.Random(20261203)
    try:
        publish(srv, "tags", TAG)
        publish(srv, "segments", SEG3)
        publish(srv, "segments", SEG5)
        assert srv.wait_for(lambda: computed(srv, "segments", "ping5_tag"), 20)
        st, c = srv.api("GET", "/api/v1/clock")
        state = {"t": c["now_ms"], "seq": 0, "pending": [], "acked": collections.Counter()}
        for rnd in range(ROUNDS):
            stop = threading.Event()
            th = threading.Thread(target=load, args=(srv, rng, state, stop))
            th.start()
            # kill while the load runs: spread the cap over the rounds
            target = EVENTS_MAX * (rnd + 1) // (ROUNDS + 1)
            deadline = time.time() + 5
            while state["seq"] < target and time.time() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.05))
            srv.kill9()
            stop.set()
            th.join()
            srv.start()
        # the rest of the load without kills, then what was in flight at a kill
        stop = threading.Event()
        th = threading.Thread(target=load, args=(srv, rng, state, stop))
        th.start()
        while state["seq"] < EVENTS_MAX:
            time.sleep(0.01)
        stop.set()
        th.join()
        while state["pending"]:
            batch = state["pending"].pop()
            st, _, _ = srv.sa_post(batch)
            assert st == 200, st
            for r in batch:
                state["acked"][r["distinct_id"]] += 1
        # an acknowledged batch sent again (its answer lost) is recognised: counted once
        acked = state["acked"]
        want3 = {u for u in USERS if acked[u] >= 3}
        want5 = {u for u in USERS if acked[u] >= 5}
        check(5 < len(want5) < len(want3) < len(USERS), "the load produced members and non-members", (len(want3), len(want5)))
        got3 = srv.wait_for(lambda: members(srv, "ping3") == want3 and members(srv, "ping3"), 15)
        check(members(srv, "ping3") == want3, "segment (did) equals the acknowledged events",
              (sorted(members(srv, "ping3") ^ want3)[:8], bool(got3)))
        srv.wait_for(lambda: members(srv, "ping5_tag") == want5, 15)
        check(members(srv, "ping5_tag") == want5, "segment (via tag) equals the acknowledged events",
              sorted(members(srv, "ping5_tag") ^ want5)[:8])
        bad = []
        for u in USERS:
            n = len(seg_events(srv, u, "$SegmentEntered", "ping3") or [])
            if n != (1 if u in want3 else 0):
                bad.append((u, n, acked[u]))
        check(not bad, "exactly one $SegmentEntered per member, none for others", bad[:8])
        # a full recompute (new version) agrees with the incremental state
        v = publish(srv, "segments", SEG3)
        check(srv.wait_for(lambda: computed(srv, "segments", "ping3"), 20) and members(srv, "ping3") == want3,
              f"full recompute (version {v}) equals the incremental membership")
        again = [u for u in want3 if len(seg_events(srv, u, "$SegmentEntered", "ping3") or []) != 1]
        check(not again, "the recompute adds no $SegmentEntered for unchanged members", again[:8])
        # the clock pass: the window slides past every Ping; kill it half-way
        srv.api("POST", "/api/v1/clock", {"advance": "8d"})
        time.sleep(rng.uniform(0.0, 0.15))
        srv.kill9()
        srv.start()
        check(srv.wait_for(lambda: not members(srv, "ping3"), 20), "everyone left after the window slid")
        bad = []
        for u in want3:
            n = len(seg_events(srv, u, "$SegmentExited", "ping3") or [])
            if n != 1:
                bad.append((u, n))
        check(not bad, "exactly one $SegmentExited per member across a kill during the clock pass", bad[:8])
        print(f"audience crash test: {ROUNDS} kill -9 rounds, {sum(acked.values())} acknowledged events, "
              f"{len(want3)} members")
    finally:
        srv.cleanup()


run_case(test_audience_kill9)
finish()
