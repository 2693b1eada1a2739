"""Seed scenario 同一产品浏览3次转投顾商机 (viewed the same fund 3 times) end
to end: real ViewFundDetail events over HTTP and the test clock. The entry
itself is the rule: a view enters only when it is at least the third view of
the same fund (fund_code of the triggering event) in the last 7 local days,
so two views, views of another fund and views spread over more than 7 days
(days 0, 4, 9; 0, 6, 7; 0, 8, 9) never start an instance. An entry creates an advisor lead with the product
material and sends the material by WeCom (a real local receiver), then
exits; the re-entry wait keeps the 4th and 5th view of the week from making
a second lead. Suitability: an R5 fund for a C2 customer still makes a lead
(the advisor checks suitability first) but the material is suppressed,
visible as $MessageSuppressed with reason "suitability" and its detail."""
import time

from journeys import SECRET, advance, advance_to_local, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

FUND = {"code": "000311", "name": "景顺长城沪深300指数增强", "risk": "R3"}
RISKY = {"code": "005827", "name": "易方达蓝筹精选混合", "risk": "R5"}
A, B, C, D, E, F = (f"c7pv{i:08d}" for i in range(1, 7))
RISK = {A: "C4", B: "C4", C: "C4", D: "C4", E: "C2", F: "C4"}
ALL = (A, B, C, D, E, F)


def wait_for(srv, fn, timeout=10.0):
    return srv.wait_for(fn, timeout)


def ev(srv, uid, name, props):
    """Stamped with the test clock (time_free: ingest checks the wall clock)."""
    return track(uid, name, props, t=now_ms(srv), time_free=True)


def history(srv, uid):
    st, body = srv.events(uid, limit=200)
    return body.get("events", []) if st == 200 else []


def count(srv, uid, name):
    return len([x for x in history(srv, uid) if x["event"] == name])


def views(srv, pairs):
    """Posts one view per (customer, fund) and waits until each is in its
    customer's history: a record's journey work commits with the record, so
    from then on its effect (or the absence of one) is visible."""
    want = {}
    for u, _ in pairs:
        want[u] = want.get(u, count(srv, u, "ViewFundDetail")) + 1
    recs = [ev(srv, u, "ViewFundDetail", {"fund_code": f["code"], "fund_type": "mixed", "risk_level": f["risk"]})
            for u, f in pairs]
    st, _, data = srv.sa_post(recs)
    assert st == 200, data
    ok = wait_for(srv, lambda: all(count(srv, u, "ViewFundDetail") >= n for u, n in want.items()))
    assert ok, ("views not applied", want)


def live(srv, uid):
    st, u = srv.user(uid)
    return [j for j in u.get("journeys", []) if j["journey"] == "viewed_product_3x"] if st == 200 else []


def entered(srv, uid):
    return [x for x in history(srv, uid)
            if x["event"] == "$JourneyEntered" and (x.get("properties") or {}).get("journey") == "viewed_product_3x"]


def user_id(srv, uid):
    return srv.user(uid)[1]["user_id"]


def leads(srv):
    st, body = srv.api("GET", "/api/v1/leads?queue=wealth")
    return body.get("leads", []) if st == 200 else []


def lead_users(srv):
    return [x["user_id"] for x in leads(srv)]


def wecom(rx, uid):
    # WeCom addresses a customer contact as a list of external_userid (docs/channels.md)
    return [r for r in rx.requests() if r.path == "/wecom" and (r.json or {}).get("external_userid") == [f"wx-{uid}"]]


def report(srv):
    st, rep = srv.api("GET", "/api/v1/journeys/viewed_product_3x/report")
    return rep if st == 200 else {}


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
                     for u in ALL]
            st, _, data = srv.sa_post(recs)
            check(st == 200, "funds and profiles accepted", data)
            ids = {u: wait_for(srv, lambda u=u: srv.user(u)[0] == 200 and user_id(srv, u)) for u in ALL}

            # day 0: first views; day 1: second views of A, B and E
            views(srv, [(A, FUND), (B, FUND), (C, FUND), (D, FUND), (E, RISKY), (F, FUND)])
            check(not any(live(srv, u) or entered(srv, u) for u in ALL), "a first view does not enter",
                  {u: (live(srv, u), entered(srv, u)) for u in ALL})
            advance(srv, "1d")
            views(srv, [(A, FUND), (B, FUND), (E, RISKY)])
            check(not any(live(srv, u) or entered(srv, u) for u in (A, B, E)),
                  "entry rule: no journey instance at all after 2 views", {u: entered(srv, u) for u in (A, B, E)})
            check(report(srv).get("entered", -1) == 0 and not leads(srv), "report: nobody entered yet, no lead",
                  (report(srv).get("entered"), leads(srv)))

            # day 2: third views of the same fund for A and E; B's third view is of another fund
            advance(srv, "1d")
            views(srv, [(A, FUND), (E, RISKY), (B, RISKY)])
            check(wait_for(srv, lambda: {ids[A], ids[E]} <= set(lead_users(srv))), "third view: lead for A and E",
                  lead_users(srv))
            check(len(entered(srv, A)) == 1 and len(entered(srv, E)) == 1, "third view of the same fund enters once",
                  (entered(srv, A), entered(srv, E)))
            check(not entered(srv, B) and ids[B] not in lead_users(srv),
                  "a view of another fund does not count (B: 2 views of one fund, 1 of another)", entered(srv, B))
            check(wait_for(srv, lambda: not live(srv, A) and not live(srv, E)), "lead, material, exit: no live instance",
                  [live(srv, u) for u in (A, E)])
            got = {x["user_id"]: x for x in leads(srv)}
            check(sorted(got) == sorted([ids[A], ids[E]]), "one advisor lead each for A and E, no one else", list(got))
            la = got.get(ids[A], {})
            check(FUND["name"] in (la.get("talk_track") or "") and "R3" in (la.get("talk_track") or ""),
                  "lead talk track names the fund and its risk level", la.get("talk_track"))
            check((la.get("item") or {}).get("fund_name") == FUND["name"], "lead carries the product (item)",
                  la.get("item"))
            check(la.get("priority") == "high" and la.get("sla_due_ms", 0) > la.get("created_ms", 0),
                  "lead: high priority with an SLA", la)
            check(la.get("sla_due_ms", 0) - la.get("created_ms", 0) == 86400000, "lead SLA is 1 day",
                  (la.get("created_ms"), la.get("sla_due_ms")))
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
            sup = wait_for(srv, lambda: [x for x in history(srv, E) if x["event"] == "$MessageSuppressed"])
            p = sup[0]["properties"] if sup else {}
            check(p.get("reason") == "suitability" and p.get("node") == "material" and p.get("channel") == "wecom",
                  "$MessageSuppressed with reason suitability at the material node", p)
            check("R5" in (p.get("detail") or "") and "C2" in (p.get("detail") or ""),
                  "suppression detail names product and customer risk", p.get("detail"))

            # day 3 and 4: A's 4th and 5th view the same week (still >= 3 in 7 days); D's second view
            advance(srv, "1d")
            views(srv, [(A, FUND)])
            advance(srv, "1d")
            views(srv, [(A, FUND), (D, FUND)])
            time.sleep(0.3)  # let a (wrong) second message reach the receiver
            check(lead_users(srv).count(ids[A]) == 1 and len(entered(srv, A)) == 1 and not live(srv, A),
                  "a 4th and 5th view the same week: no second entry, no second lead",
                  (lead_users(srv), entered(srv, A)))
            check(len(wecom(rx, A)) == 1, "no second material for A", len(wecom(rx, A)))

            # day 6 and 7: F views again; day 0 is the 8th local day back, outside the window (day 1..7)
            advance(srv, "2d")
            views(srv, [(F, FUND)])
            advance(srv, "1d")
            views(srv, [(F, FUND)])
            check(not entered(srv, F) and ids[F] not in lead_users(srv),
                  "7-day window ends there: no entry, no lead for views on day 0, 6 and 7", entered(srv, F))
            # day 8 and 9: C views again (its first view, day 0, is outside the window); D too (days 0, 4, 9)
            advance(srv, "1d")
            views(srv, [(C, FUND)])
            advance(srv, "1d")
            views(srv, [(C, FUND), (D, FUND)])
            now = set(lead_users(srv))
            check(not entered(srv, C) and ids[C] not in now, "no entry, no lead for views on day 0, 8 and 9",
                  entered(srv, C))
            check(not entered(srv, D) and ids[D] not in now,
                  "7-day window: no entry, no lead for views on day 0, 4 and 9 (spread over 9 days)", entered(srv, D))
            # day 10: D's views on day 4, 9 and 10 are within the last 7 local days (day 4..10)
            advance(srv, "1d")
            views(srv, [(D, FUND)])
            check(wait_for(srv, lambda: ids[D] in lead_users(srv)),
                  "7-day window includes its first day: views on day 4, 9 and 10 make a lead", entered(srv, D))
            check(wait_for(srv, lambda: wecom(rx, D)), "material reached WeCom for D")
            time.sleep(0.3)
            check(len(wecom(rx, A)) == 1 and len(wecom(rx, D)) == 1 and not any(wecom(rx, u) for u in (B, C, F)),
                  "exactly one material message each for A and D, none for B, C and F")
            check(sorted(lead_users(srv)) == sorted([ids[A], ids[D], ids[E]]), "leads overall: A, D and E",
                  lead_users(srv))

            # report
            rep = report(srv)
            n = {x["id"]: x for x in rep.get("nodes", [])}
            check(rep.get("entered") == 3, "report: three entries (A, D, E)", rep.get("entered"))
            material = len([r for r in rx.requests() if r.path == "/wecom"])
            check(material == 2 and n.get("material", {}).get("sent") == material
                  and n.get("material", {}).get("suppressed") == 1,
                  "report: material sent as delivered (2), suppressed once", (n.get("material"), material))
            check(n.get("lead", {}).get("entered") == len(leads(srv)) == 3, "report: lead node entries match the leads",
                  (n.get("lead"), len(leads(srv))))
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            check(edges.get(("lead", "material")) == 3 and edges.get(("material", "end")) == 3,
                  "report: every entry went lead -> material -> end", edges)
            check(set(n) == {"lead", "material", "end"}, "report: only the three nodes", sorted(n))
            evs = {x["event"] for x in history(srv, A)}
            check({"$JourneyEntered", "$LeadCreated", "$MessagePrepared", "$MessageSent", "$JourneyExited"} <= evs,
                  "journey, lead and message op events in A's history", evs)
        finally:
            srv.cleanup()


run_case(test_viewed_product_3x)
finish()
