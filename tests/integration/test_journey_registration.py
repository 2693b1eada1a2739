"""Seed scenario 注册未开户7日转化 (registered, no account yet) end to end:
Register over HTTP -> day 0 SMS, day 1 push, day 3 in-app inbox, day 6 SMS by
tier, each only after the test clock passes its moment; a successful
OpenAccount exits (a failed one does not); an SMS opt-out via the consent
API suppresses SMS ($MessageSuppressed, reason consent); the journey's
1-per-day cap suppresses a push after another journey's push; a Register
at 22:00 Shanghai has its SMS held until 08:30; the inbox lists the day 3
message and marks it read; messages, report and op events agree."""
import time

from journeys import advance, advance_to_local, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

R1, R2, R3, R4, R5, R6 = (f"c8rg{i:08d}" for i in range(1, 7))
TIER = {R2: "high_net_worth"}
DAY = 86400000

PROMO = {
    "key": "test_article_push", "name": "文章阅读推送（测试）",
    "entry": {"event": "ReadArticle", "reentry": "any_time"},
    "nodes": [{"id": "push", "type": "send", "channel": "push", "template": "loan_intro", "next": "end"},
              {"id": "end", "type": "exit"}],
}


def wait_for(srv, fn, timeout=10.0):
    return srv.wait_for(fn, timeout)


def ev(srv, uid, name, props=None):
    """Stamped with the test clock (time_free: ingest checks the wall clock)."""
    return track(uid, name, props or {}, t=now_ms(srv), time_free=True)


def post(srv, recs):
    st, _, data = srv.sa_post(recs)
    assert st == 200, data


def advance_to(srv, target_ms):
    delta = target_ms - now_ms(srv)
    if delta > 0:
        advance(srv, f"{(delta + 999) // 1000}s")


def profile(srv, uid):
    return {"type": "profile_set", "distinct_id": uid, "time": now_ms(srv), "time_free": True,
            "properties": {"$is_login_id": True, "name": f"新客{uid[-1]}", "timezone": "Asia/Shanghai",
                           "mobile": f"1380000{uid[-4:]}", "push_token": f"tok-{uid}",
                           **({"tier": TIER[uid]} if uid in TIER else {})}}


def got(rx, path, uid, node=None):
    to = f"1380000{uid[-4:]}" if path == "/sms" else f"tok-{uid}"
    return [r for r in rx.requests() if r.path == path and (r.json or {}).get("to") == to
            and (node is None or (r.json or {}).get("node") == node)]


def live(srv, uid):
    st, u = srv.user(uid)
    return [j for j in u.get("journeys", []) if j["journey"] == "registered_no_account"] if st == 200 else []


def events_of(srv, uid, name):
    return [e for e in srv.events(uid, limit=200)[1].get("events", []) if e["event"] == name]


def messages(srv, uid):
    st, body = srv.api("GET", f"/api/v1/messages?user={uid}")
    return body.get("messages", []) if st == 200 else []


def inbox_items(srv, uid):
    st, body = srv.api("GET", f"/api/v1/inbox/{uid}")
    if st != 200 or not isinstance(body, dict):
        return []
    for k in ("messages", "items", "inbox"):
        if isinstance(body.get(k), list):
            return body[k]
    return []


def test_registered_no_account():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            publish(srv, "registered_no_account")
            publish(srv, "test_article_push", definition=PROMO)
            advance_to_local(srv, 10, 0)
            t0 = (now_ms(srv) + 8 * 3600000) // DAY * DAY - 8 * 3600000 + 10 * 3600000  # day 0 10:00 local
            post(srv, [profile(srv, u) for u in (R1, R2, R3, R4, R6)])
            st, body = srv.api("POST", f"/api/v1/users/{R4}/consent", {"channel": "sms", "consent": False})
            check(st == 200, "R4 opted out of SMS", body)
            post(srv, [ev(srv, u, "Register", {"source": "app"}) for u in (R1, R2, R3, R4, R6)])

            # day 0: welcome SMS now, except for the opted-out customer
            check(wait_for(srv, lambda: all(got(rx, "/sms", u, "d0_sms") for u in (R1, R2, R3, R6))),
                  "day 0 SMS to every registered customer", [u for u in (R1, R2, R3, R6) if not got(rx, "/sms", u)])
            s = got(rx, "/sms", R1, "d0_sms")
            check(s and "【Waymark证券】" in (s[0].json or {}).get("text", ""), "SMS text from the template",
                  s and s[0].json)
            check(not got(rx, "/sms", R4), "no SMS to the customer who opted out")
            sup = wait_for(srv, lambda: events_of(srv, R4, "$MessageSuppressed"))
            p = sup[0]["properties"] if sup else {}
            check(p.get("reason") == "consent" and p.get("channel") == "sms" and p.get("node") == "d0_sms",
                  "$MessageSuppressed reason consent for R4's SMS", p)
            check(events_of(srv, R4, "$Unsubscribe"), "the opt-out is an event in R4's history")
            check(all(live(srv, u) and live(srv, u)[0]["node"] == "to_d1" for u in (R1, R2, R3, R4, R6)),
                  "everyone waits for day 1")

            # day 0 12:00: another journey pushes to R6 (counts towards the 1 per day cap)
            advance_to(srv, t0 + 2 * 3600000)
            post(srv, [ev(srv, R6, "ReadArticle", {"article_id": "a-7"})])
            check(wait_for(srv, lambda: got(rx, "/push", R6, "push")), "the other journey's push reached R6")

            # day 0 22:00: R5 registers inside quiet hours: SMS held until 08:30
            advance_to(srv, t0 + 12 * 3600000)
            post(srv, [profile(srv, R5)])
            post(srv, [ev(srv, R5, "Register", {"source": "h5"})])
            open_at = t0 + 22 * 3600000 + 30 * 60000  # day 1 08:30

            def hold_marks():
                """Where the hold shows: a held message record (not_before_ms) or
                an op event of R5 naming the end of the window (until_ms)."""
                marks = [m.get("not_before_ms") for m in messages(srv, R5) if m["node"] == "d0_sms"]
                marks += [e["properties"].get("until_ms") for e in srv.events(R5, limit=50)[1].get("events", [])
                          if e["properties"].get("node") == "d0_sms"]
                return [x for x in marks if x]
            held = wait_for(srv, hold_marks)
            check(held and set(held) == {open_at}, "R5's SMS is held until 08:30 Shanghai", (held, open_at))
            time.sleep(0.8)
            check(not got(rx, "/sms", R5), "nothing at the receiver at 22:00")
            advance_to(srv, open_at - 60000)
            time.sleep(0.8)
            check(not got(rx, "/sms", R5), "nothing at the receiver at 08:29")
            advance_to(srv, open_at + 60000)
            check(wait_for(srv, lambda: got(rx, "/sms", R5)),
                  "RUNTIME BUG quiet hours hold: R5's SMS reaches the receiver once the clock passes 08:30",
                  [(m["node"], m["status"], m.get("not_before_ms")) for m in messages(srv, R5)])

            # day 1: a failed account opening does not exit; push at 10:00
            post(srv, [ev(srv, R3, "OpenAccount", {"is_success": False})])
            advance_to(srv, t0 + DAY - 60000)
            time.sleep(0.5)
            check(live(srv, R3), "RUNTIME BUG exit_when.where ignored: a failed OpenAccount does not exit",
                  [e["properties"] for e in events_of(srv, R3, "$JourneyExited")])
            check(not got(rx, "/push", R1, "d1_push"), "no day 1 push before 10:00")
            advance_to(srv, t0 + DAY + 60000)
            check(wait_for(srv, lambda: all(got(rx, "/push", u, "d1_push") for u in (R1, R2, R4))),
                  "day 1 push to R1, R2, R4 (R4 opted out of SMS only)",
                  [u for u in (R1, R2, R4) if not got(rx, "/push", u, "d1_push")])
            # each customer's push is its own delivery: R3's may land after the others'
            check(wait_for(srv, lambda: got(rx, "/push", R3, "d1_push")),
                  "RUNTIME BUG exit_when.where ignored: R3 gets the day 1 push")
            capped = wait_for(srv, lambda: [e for e in events_of(srv, R6, "$MessageSuppressed")
                                            if e["properties"].get("node") == "d1_push"])
            p = capped[0]["properties"] if capped else {}
            check(p.get("reason") == "frequency_cap" and "1 of 1" in (p.get("detail") or ""),
                  "R6's day 1 push suppressed by the 1 per day cap", p)
            check(not got(rx, "/push", R6, "d1_push"), "no day 1 push at the receiver for R6")

            # day 2: R3 opens an account -> exits, goal reached
            advance_to(srv, t0 + 2 * DAY)
            post(srv, [ev(srv, R3, "OpenAccount", {"is_success": True})])
            check(wait_for(srv, lambda: not live(srv, R3)), "a successful OpenAccount exits the journey")

            # day 3: in-app inbox
            advance_to(srv, t0 + 3 * DAY + 60000)
            check(wait_for(srv, lambda: all(inbox_items(srv, u) for u in (R1, R2, R4, R6))),
                  "day 3 inbox message for R1, R2, R4, R6")
            check(not inbox_items(srv, R3), "no inbox message after R3 opened an account")
            items = inbox_items(srv, R1)
            it = items[0] if items else {}
            check(len(items) == 1 and "新人指南" in (it.get("body") or "") and it.get("read") is False,
                  "R1's inbox lists the unread guide", items)
            mid = it.get("message_id", "")
            st, body = srv.api("POST", f"/api/v1/inbox/{R1}/read?message_id={mid}")
            check(st == 200, "mark read accepted", body)
            check(wait_for(srv, lambda: (inbox_items(srv, R1) or [{}])[0].get("read") is True),
                  "the inbox message is marked read", inbox_items(srv, R1))
            check(wait_for(srv, lambda: events_of(srv, R1, "$MessageRead")), "$MessageRead in R1's history")
            check(not [r for r in rx.requests() if (r.json or {}).get("node") == "d3_inbox"],
                  "inbox messages are not sent to any provider")

            # day 6: SMS by tier
            advance_to(srv, t0 + 6 * DAY + 60000)
            check(wait_for(srv, lambda: got(rx, "/sms", R1, "d6_sms_general") and got(rx, "/sms", R2, "d6_sms_wealth")),
                  "day 6 SMS: general text for R1, wealth text for R2",
                  [(r.json or {}).get("node") for r in rx.requests() if r.path == "/sms"])
            check(wait_for(srv, lambda: not live(srv, R1) and not live(srv, R2)), "R1 and R2 finished the journey")
            time.sleep(0.3)
            check(not got(rx, "/sms", R4), "still no SMS for R4")
            check(not [r for r in got(rx, "/sms", R3) + got(rx, "/push", R3) if (r.json or {}).get("node")
                       not in ("d0_sms", "d1_push")], "nothing for R3 after the account opening")
            m1 = messages(srv, R1)
            check(sorted(m["node"] for m in m1) == ["d0_sms", "d1_push", "d3_inbox", "d6_sms_general"],
                  "R1's four messages are listed", [(m["node"], m["channel"], m["status"]) for m in m1])
            check(all(m["status"] in ("sent", "delivered") for m in m1), "R1's messages all have an outcome",
                  [(m["node"], m["status"]) for m in m1])

            # report
            st, rep = srv.api("GET", "/api/v1/journeys/registered_no_account/report")
            n = {x["id"]: x for x in rep.get("nodes", [])}
            check(st == 200 and rep.get("entered") == 6, "report: six entries", rep.get("entered"))
            check(n.get("d0_sms", {}).get("suppressed") == 1 and n.get("d0_sms", {}).get("sent") == 5,
                  "report: day 0 SMS sent 5, suppressed 1", n.get("d0_sms"))
            check(n.get("d1_push", {}).get("suppressed") == 1, "report: day 1 push suppressed once (cap)",
                  n.get("d1_push"))
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            check(edges.get(("d6_who", "d6_sms_wealth")) == 1, "report: one customer on the wealth arm", edges)
            check(rep.get("goal_reached") == 1,
                  "RUNTIME BUG goal vs exit_when: the successful OpenAccount counts as the goal",
                  rep.get("goal_reached"))
        finally:
            srv.cleanup()


run_case(test_registered_no_account)
finish()
