"""Self-test of tests/integration/receiver.py, the HTTP endpoint the journey
integration tests point channels at. It must record faithfully, follow its
failure script in order, answer concurrently on keep-alive connections, and
verify signatures exactly as Waymark makes them (the fixed vector is the one
tests/unit/dispatch/test_dispatcher.c checks wm_dispatch_sign against).
"""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from receiver import Receiver, sign, verify_signature  # noqa: E402
from wmtest import check, finish, run_case  # noqa: E402

# wm_dispatch_sign("s3cret", 1700000000, "{\"a\":1}") in the C unit test
VECTOR = "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"


def post(conn, path, body, headers=None):
    h = {"Content-Type": "application/json; charset=utf-8"}
    h.update(headers or {})
    conn.request("POST", path, body=body.encode("utf-8"), headers=h)
    resp = conn.getresponse()
    return resp.status, resp.getheader("Retry-After"), resp.read()


def test_records_requests():
    with Receiver() as rcv:
        conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=5)
        body = json.dumps({"message_id": "m-1", "text": "你好"})
        status, _, _ = post(conn, "/hook", body,
                            {"X-Waymark-Message-Id": "m-1", "X-Waymark-Attempt": "1",
                             "X-Waymark-Channel": "%E7%90%86%E8%B4%A2 100%25"})
        check(status == 200, "default answer is 200", status)
        reqs = rcv.requests()
        check(len(reqs) == 1, "one request recorded", reqs)
        r = reqs[0]
        check(r.method == "POST" and r.path == "/hook", "method and path", r)
        check(r.message_id == "m-1" and r.attempt == 1, "waymark headers", r.headers)
        check(r.channel == "理财 100%", "channel percent-decoded", r.channel)
        check(r.header("content-type") == "application/json; charset=utf-8", "header lookup ignores case")
        check(r.json == {"message_id": "m-1", "text": "你好"}, "JSON body parsed", r.json)
        check(r.body == body.encode("utf-8"), "raw body kept")
        conn.close()


def test_failure_script_and_keep_alive():
    with Receiver() as rcv:
        rcv.fail_next(2, 500)
        rcv.fail_next(1, 429, retry_after=3)
        conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=5)
        answers = [post(conn, "/x", "{}", {"X-Waymark-Message-Id": "m"}) for _ in range(4)]
        check([a[0] for a in answers] == [500, 500, 429, 200], "script then default",
              [a[0] for a in answers])
        check(answers[2][1] == "3", "Retry-After sent", answers[2][1])
        check(answers[3][1] is None, "no Retry-After on 200")
        check([r.status for r in rcv.by_id("m")] == [500, 500, 429, 200], "statuses recorded")
        check(rcv.delivered_ids() == {"m": 1}, "2xx counted per id", rcv.delivered_ids())
        rcv.set_default(400)
        check(post(conn, "/x", "{}")[0] == 400, "default changed on the same connection")
        rcv.clear()
        check(rcv.requests() == [] and post(conn, "/x", "{}")[0] == 200, "clear resets")
        conn.close()


def test_concurrent_and_wait_for():
    with Receiver() as rcv:
        rcv.set_default(200, delay_s=0.2)
        errors = []

        def client(i):
            try:
                c = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=5)
                post(c, "/c", "{}", {"X-Waymark-Message-Id": f"c-{i}"})
                c.close()
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        check(rcv.wait_for(20, timeout=10), "20 concurrent requests arrive while others sleep")
        for t in threads:
            t.join()
        check(not errors, "no client errors", errors)
        check(sorted(rcv.delivered_ids()) == sorted(f"c-{i}" for i in range(20)), "each id once")
        check(not rcv.wait_for(21, timeout=0.05), "wait_for says False when nothing more comes")


def test_signatures():
    body = '{"a":1}'
    check(sign("s3cret", 1700000000, body) == VECTOR, "sign matches the C vector")
    check(verify_signature(VECTOR, body.encode(), "s3cret", tolerance_s=None), "vector verifies")
    check(not verify_signature(VECTOR, body.encode(), "other", tolerance_s=None), "wrong secret")
    check(not verify_signature(VECTOR, b'{"a":2}', "s3cret", tolerance_s=None), "changed body")
    check(not verify_signature(VECTOR, body.encode(), "s3cret", tolerance_s=300),
          "old timestamp outside tolerance")
    check(not verify_signature("garbage", b"", "s3cret"), "malformed header")
    check(not verify_signature(None, b"", "s3cret"), "missing header")
    with Receiver() as rcv:
        conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=5)
        now = int(time.time())
        post(conn, "/s", body, {"X-Waymark-Signature": sign("k", now, body)})
        check(Receiver.verify(rcv.requests()[0], "k"), "recorded request verifies")
        check(not Receiver.verify(rcv.requests()[0], "nope"), "and not with another secret")
        conn.close()


def test_stop_cuts_delays_short():
    rcv = Receiver().start()
    rcv.set_default(200, delay_s=30)
    done = threading.Event()

    def client():
        try:
            c = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
            post(c, "/slow", "{}")
        except Exception:  # noqa: BLE001 - the answer may be cut off; only stop matters
            pass
        done.set()

    threading.Thread(target=client, daemon=True).start()
    check(rcv.wait_for(1, timeout=5), "slow request arrived")
    rcv.stop()
    check(done.wait(10), "a delayed answer does not keep stop() waiting")


if __name__ == "__main__":
    for case in (test_records_requests, test_failure_script_and_keep_alive,
                 test_concurrent_and_wait_for, test_signatures, test_stop_cuts_delays_short):
        run_case(case)
    finish()
