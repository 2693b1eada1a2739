"""Crash test: ingest over HTTP while the server is killed with SIGKILL at
random moments. After every restart, each record that was acknowledged
(HTTP 200) must be present exactly once, and no record may appear twice,
even when a client resends a batch whose answer it never saw.

CRASH_ROUNDS (default 20) sets the number of kill/restart rounds.
"""
import collections
import os
import random
import threading
import time

from wmtest import Server, check, finish, run_case, track

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "20"))
USERS = 400
THREADS = 4
BATCH = 10


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = set()
        self.sent = set()


def sender(srv, ledger, rnd, tid, stop, rng):
    n = 0
    pending = None  # a batch whose answer was lost: resend it (a client retry)
    while not stop.is_set():
        if pending is None:
            recs = []
            for _ in range(BATCH):
                cid = f"{rnd}-{tid}-{n}"
                n += 1
                u = f"crash-u{rng.randrange(USERS)}"
                recs.append(track(u, "CrashProbe", {"cid": cid}, track_id=rng.randrange(1 << 31)))
            pending = recs
        with ledger.lock:
            for r in pending:
                ledger.sent.add(r["properties"]["cid"])
        try:
            st, _, _ = srv.sa_post(pending)
        except OSError:
            return  # server gone; the batch stays unacknowledged
        if st == 200:
            with ledger.lock:
                for r in pending:
                    ledger.acked.add(r["properties"]["cid"])
            # now and then resend an acknowledged batch: must not duplicate
            if rng.random() < 0.1:
                try:
                    srv.sa_post(pending)
                except OSError:
                    return
            pending = None
        time.sleep(rng.random() * 0.004)


def count_cids(srv):
    counts = collections.Counter()
    for u in range(USERS):
        st, body = srv.events(f"crash-u{u}", limit=1000)
        if st == 404:
            continue
        if st != 200:
            raise RuntimeError(f"events for crash-u{u}: {st} {body}")
        if len(body["events"]) >= 1000:
            raise RuntimeError(f"crash-u{u} has 1000+ events: the listing limit would hide some")
        for ev in body["events"]:
            counts[ev["properties"]["cid"]] += 1
    return counts


def verify(srv, ledger, when):
    counts = count_cids(srv)
    lost = [c for c in ledger.acked if counts[c] == 0]
    dups = [c for c, k in counts.items() if k > 1]
    phantom = [c for c in counts if c not in ledger.sent]
    check(not lost, f"{when}: every acknowledged record present",
          f"{len(lost)} lost of {len(ledger.acked)}, e.g. {lost[:5]}")
    check(not dups, f"{when}: no record stored twice", f"e.g. {dups[:5]}")
    check(not phantom, f"{when}: nothing stored that was never sent", f"e.g. {phantom[:5]}")
    return len(ledger.acked)


def test_kill9_rounds():
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    srv = Server(fsync="always", partitions=2)
    ledger = Ledger()
    try:
        for rnd in range(ROUNDS):
            srv.start()
            if rnd:
                verify(srv, ledger, f"after restart {rnd}")
            stop = threading.Event()
            threads = [threading.Thread(target=sender,
                                        args=(srv, ledger, rnd, t, stop, random.Random(rng.random())))
                       for t in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(0.05 + rng.random() * 0.5)
            srv.kill9()
            stop.set()
            for t in threads:
                t.join()
        srv.start()
        total = verify(srv, ledger, "final")
        check(total > ROUNDS * 10, "the test acknowledged a meaningful number of records",
              f"only {total}")
        print(f"crash test: {ROUNDS} kill -9 rounds, {total} acknowledged records verified")
    finally:
        srv.cleanup()


run_case(test_kill9_rounds)
finish()
