"""Seed scenario 同一产品浏览3次转投顾商机 (viewed the same fund 3 times) end
to end: real ViewFundDetail events over HTTP and the test clock. The third
view of the same fund within 7 days creates an advisor lead with the
product material and sends the material by WeCom (a real local receiver);
two views, views of another fund and views spread over more than 7 days do
not. Suitability: an R5 fund for a C2 customer still makes a lead (the
advisor checks suitability first) but the material is suppressed, visible as
$MessageSuppressed with reason "suitability" and its detail."""
import time

from journeys import SECRET, advance, advance_to_local, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

FUND = {"code": "000311", "name": "景顺长城沪深300指数增强", "risk": "R3"}
RISKY = {"code": "005827", "name": "易方达蓝筹精选混合", "risk": "R5"}
A, B, C, D, E = (f"c7pv{i:08d}" for i in range(1, 6))
RISK = {A: "C4", B: "C4", C: "C4", D: "C4", E: "C2"}


def wait_for(srv, fn, timeout=10.0):
    return srv.wait_for(fn, timeout)


def ev(srv, uid, name, props):
    """Stamped with the test clock (time_free: ingest checks the wall clock)."""
    return track(uid, name, props, t=now_ms(srv), time_free=True)


def view(srv, uid, fund):
    st, _, data = srv.sa_post([ev(srv, uid, "ViewFundDetail",
                                  {"fund_code": fund["code"], "fund_type": "mixed", "risk_level": fund["risk"]})])
    assert st == 200, data


def live(srv, uid):
    st, u = srv.user(uid)
    return [j for j in u.get("journeys", []) if j["journey"] == "viewed_product_3x"] if st == 200 else []


def user_id(srv, uid):
    return srv.user(uid)[1]["user_id"]


def leads(srv):
    st, body = srv.api("GET", "/api/v1/leads?queue=wealth")
    return body.get("leads", []) if st == 200 else []


def wecom(rx, uid):
    return [r for r in rx.requests() if r.path == "/wecom" and (r.json or {}).get("external_userid") == f"wx-{uid}"]


def settle(srv, uids, nodes):
    """Waits until each user's instance is at the expected node (None = no live instance)."""
    def ok():
        for u, n in zip(uids, nodes):
            j = live(srv, u)
            if (n is None and j) or (n is not None and (not j or j[0]["node"] != n)):
                return False
        return True
    return wait_for(srv, ok)


def test_viewed_product_3x():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            publish(srv, "viewed_product_3x")
            advance_to_local(srv, 10, 0)  # daytime: outside 21:00-09:00
            t = now_ms(srv)
            recs = [{"type": "item_set", "item_type": "fund", "item_id": f["code"], "time": t, "time_free": True,
                     "properties": {"fund_name": f["name"], "fund_type": "mixed", "risk_level": f["risk"]}}
                    for f in (FUND, RISKY)]
            recs += [{"type": "profile_set", "distinct_id": u, "time": t, "time_free": True,
                      "properties": {"$is_login_id": True, "name": f"客户{u[-1]}", "risk_level": RISK[u],
                                     "timezone": "Asia/Shanghai", "wecom_external_userid": f"wx-{u}"}}
                     for u in (A, B, C, D, E)]
            st, _, data = srv.sa_post(recs)
            check(st == 200, "funds and profiles accepted", data)

            # day 0: first views
            for u in (A, B, C, D):
                view(srv, u, FUND)
            view(srv, E, RISKY)
            check(settle(srv, (A, B, C, D, E), ["second"] * 5), "every first view entered, waiting for a second",
                  [live(srv, u) for u in (A, B, C, D, E)])
            # day 1: second views; B also looks at another fund (does not count)
            advance(srv, "1d")
            for u in (A, B):
                view(srv, u, FUND)
            view(srv, B, RISKY)
            view(srv, E, RISKY)
            check(settle(srv, (A, B, E), ["third", "third", "third"]), "second view of the same fund moves on",
                  [live(srv, u) for u in (A, B, E)])
            time.sleep(0.3)
            check(live(srv, B) and live(srv, B)[0]["node"] == "third", "a view of another fund does not count",
                  live(srv, B))
            # day 2: third views within 7 days
            advance(srv, "1d")
            view(srv, A, FUND)
            view(srv, E, RISKY)
            check(settle(srv, (A, E), [None, None]), "third view: lead, material, exit",
                  [live(srv, u) for u in (A, E)])
            ua, ue = user_id(srv, A), user_id(srv, E)
            got = {l["user_id"]: l for l in leads(srv)}
            check(set(got) == {ua, ue}, "one advisor lead each for A and E, no one else", list(got))
            la = got.get(ua, {})
            check(FUND["name"] in (la.get("talk_track") or "") and "R3" in (la.get("talk_track") or ""),
                  "lead talk track names the fund and its risk level", la.get("talk_track"))
            check((la.get("item") or {}).get("fund_name") == FUND["name"], "lead carries the product (item)",
                  la.get("item"))
            check(la.get("priority") == "high" and la.get("sla_due_ms", 0) > la.get("created_ms", 0),
                  "lead: high priority with an SLA", la)
            check([e["event"] for e in la.get("recent_events", [])].count("ViewFundDetail") >= 3,
                  "lead shows the three views", [e["event"] for e in la.get("recent_events", [])])
            # material by WeCom for A
            check(wait_for(srv, lambda: wecom(rx, A)), "material reached WeCom for A")
            w = wecom(rx, A)
            text = ((w[0].json or {}).get("text") or {}).get("content", "") if w else ""
            check(FUND["name"] in text and "客户1" in text, "material personalised with the fund name", text)
            check(w and Receiver.verify(w[0], SECRET), "material request signed")
            st, msgs = srv.api("GET", f"/api/v1/messages?user={A}")
            m = msgs.get("messages", []) if st == 200 else []
            check(len(m) == 1 and m[0]["node"] == "material" and m[0]["channel"] == "wecom",
                  "A's message is listed", m)
            check(m and rx.by_id(m[0]["id"]), "the provider saw the same message id")
            # suitability: E (C2) and an R5 fund
            check(not wecom(rx, E), "no material to the C2 customer for an R5 fund")
            st, msgs = srv.api("GET", f"/api/v1/messages?user={E}")
            check(st == 200 and not msgs.get("messages"), "no message record for E", msgs)
            sup = wait_for(srv, lambda: [x for x in srv.events(E, limit=100)[1]["events"]
                                         if x["event"] == "$MessageSuppressed"])
            p = sup[0]["properties"] if sup else {}
            check(p.get("reason") == "suitability" and p.get("node") == "material" and p.get("channel") == "wecom",
                  "$MessageSuppressed with reason suitability at the material node", p)
            check("R5" in (p.get("detail") or "") and "C2" in (p.get("detail") or ""),
                  "suppression detail names product and customer risk", p.get("detail"))

            # day 4: D's second view (D started day 0)
            advance(srv, "2d")
            view(srv, D, FUND)
            check(settle(srv, (D,), ["third"]), "D's second view on day 4", live(srv, D))
            # day 7 10:01: C (one view) times out; day 8 10:01: B (views on day 0 and 1) too
            advance(srv, "3d1m")
            check(settle(srv, (C, B), [None, "third"]), "one view times out after 7 days", live(srv, C))
            advance(srv, "1d")
            check(settle(srv, (B,), [None]), "two views time out 7 days after the second", live(srv, B))
            # day 8 and 9: C views again (its first view is more than 7 days old)
            view(srv, C, FUND)
            advance(srv, "1d")
            view(srv, C, FUND)
            view(srv, D, FUND)  # D: views on day 0, 4 and 9
            time.sleep(0.8)
            now = {l["user_id"] for l in leads(srv)}
            check(user_id(srv, B) not in now, "no lead after only two views", now)
            check(user_id(srv, C) not in now, "no lead for views on day 0, 8 and 9", now)
            check(user_id(srv, D) not in now,
                  "SCHEMA GAP 7-day window: no lead for views on day 0, 4 and 9 (spread over 9 days)",
                  "each wait_event's timeout restarts at the previous view; no timeout relative to entry")
            check(len(wecom(rx, A)) == 1 and not wecom(rx, B) and not wecom(rx, C),
                  "exactly one material message overall for A, none for B and C")

            # report
            st, rep = srv.api("GET", "/api/v1/journeys/viewed_product_3x/report")
            n = {x["id"]: x for x in rep.get("nodes", [])}
            check(st == 200 and rep.get("entered", 0) >= 5, "report: entries", rep.get("entered"))
            material = len([r for r in rx.requests() if r.path == "/wecom"])
            check(n.get("material", {}).get("sent") == material and n.get("material", {}).get("suppressed") == 1,
                  "report: material sent as delivered, suppressed once", (n.get("material"), material))
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            check(edges.get(("second", "end")) == 1 and edges.get(("third", "end")) == 1,
                  "report: one time-out at second (C), one at third (B)", edges)
            check(n.get("lead", {}).get("entered") == len(leads(srv)), "report: lead node entries match the leads",
                  (n.get("lead"), len(leads(srv))))
            evs = {x["event"] for x in srv.events(A, limit=100)[1]["events"]}
            check({"$JourneyEntered", "$LeadCreated", "$MessagePrepared", "$MessageSent", "$JourneyExited"} <= evs,
                  "journey, lead and message op events in A's history", evs)
        finally:
            srv.cleanup()


run_case(test_viewed_product_3x)
finish()
