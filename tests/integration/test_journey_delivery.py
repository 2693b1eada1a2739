"""Delivery dead letters: a message the provider refuses for good ends
"failed" and is listed with GET /api/v1/messages?status=failed; once the
provider is fixed, POST /api/v1/messages/{id}/retry sends it again with the
same message id."""
import time

from journeys import SECRET
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

J = {"key": "dl_probe", "name": "dead letter probe",
     "entry": {"event": "Ping", "reentry": "any_time"},
     "nodes": [{"id": "s", "type": "send", "channel": "hook", "template": "t", "next": "e"},
               {"id": "e", "type": "exit"}]}


def test_dead_letter_and_retry():
    with Receiver() as rx:
        srv = Server().start()
        try:
            st, b = srv.api("PUT", "/api/v1/channels/hook", {"kind": "webhook", "url": rx.url("/hook"),
                                                            "secret": SECRET})
            check(st == 200, "channel", b)
            st, b = srv.api("PUT", "/api/v1/templates/t", {"channel": "hook", "title": "t", "body": "hello"})
            check(st == 200, "template", b)
            st, b = srv.api("POST", "/api/v1/journeys", J)
            st, b = srv.api("POST", "/api/v1/journeys/dl_probe/publish")
            check(st == 200, "published", b)
            rx.set_default(400)  # the provider refuses: permanent
            srv.sa_post([track("dl-1", "Ping", {})])

            def failed():
                st, m = srv.api("GET", "/api/v1/messages?status=failed")
                return m if st == 200 and m.get("count") == 1 else None
            dl = srv.wait_for(failed)
            check(dl is not None, "the refused message is listed as a dead letter", srv.api("GET", "/api/v1/messages?status=failed"))
            if not dl:
                return
            msg = dl["messages"][0]
            check(msg["status"] == "failed" and msg["http_status"] == 400 and "400" in (msg.get("error") or ""),
                  "the dead letter keeps the provider's answer", msg)
            first = [r for r in rx.requests() if r.message_id == msg["id"]]
            check(len(first) == 1, "a 400 is not retried", len(first))
            rx.set_default(200)
            st, _ = srv.api("POST", f"/api/v1/messages/{msg['id']}/retry")
            check(st == 200, "retry accepted")
            ok = srv.wait_for(lambda: srv.api("GET", f"/api/v1/messages/{msg['id']}")[1].get("status") == "sent")
            check(ok, "the retried message ends sent")
            again = [r for r in rx.requests() if r.message_id == msg["id"]]
            check(len(again) == 2 and again[-1].status == 200, "the provider got the same message id again", again)
            st, m = srv.api("GET", "/api/v1/messages?status=failed")
            check(st == 200 and m["count"] == 0, "no dead letter left", m)
            evs = srv.wait_for(lambda: [e["event"] for e in srv.events("dl-1")[1]["events"]
                                        if e["event"] in ("$MessageFailed", "$MessageRetried", "$MessageSent")])
            check(evs and {"$MessageFailed", "$MessageRetried"} <= set(evs), "failure and retry are events", evs)
            st, _ = srv.api("POST", f"/api/v1/messages/{msg['id']}/retry")
            time.sleep(0.3)
            check(len([r for r in rx.requests() if r.message_id == msg["id"]]) == 2,
                  "retrying a message that was sent does nothing")
        finally:
            srv.cleanup()


run_case(test_dead_letter_and_retry)
finish()
