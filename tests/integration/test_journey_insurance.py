"""Seed scenario 保险线下活动 (insurance offline event) end to end: a
scheduled entry over the mass-affluent 28-45 segment, the WeCom invite, the
registration and check-in events, the advisor's needs-analysis lead whose
completion ("purchased") comes back as a LeadOutcome event the journey waits
for, the policy event, the CRM webhook, the welcome and - a week later - the
referral ask. Also the roads of customers who do not register, who register
but do not attend, and whose lead ends "declined". The test clock drives the
5 / 3 / 14 / 7 day waits."""
import time

from journeys import SECRET, advance, advance_to_local, load_json, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

KEY = "insurance_event_invite"
BUY, NOSHOW, NOREG, DECLINE = "in_buy_01", "in_noshow_02", "in_noreg_03", "in_decline_04"
YOUNG, HNW = "in_young_05", "in_hnw_06"
IN = [BUY, NOSHOW, NOREG, DECLINE]


def journey_of(srv, uid, key=KEY):
    st, u = srv.user(uid)
    if st != 200:
        return None
    return next((j for j in u["journeys"] if j["journey"] == key), None)


def at_node(srv, uid, node):
    return (journey_of(srv, uid) or {}).get("node") == node


def messages(srv, uid):
    st, body = srv.api("GET", f"/api/v1/messages?user={uid}")
    return body.get("messages", []) if st == 200 else []


def msgs_at(srv, uid, node):
    return [m for m in messages(srv, uid) if m["node"] == node]


def events(srv, uid, name):
    return [e for e in srv.events(uid, limit=200)[1].get("events", []) if e["event"] == name]


def send(srv, uid, event, props=None):
    st, _, data = srv.sa_post([track(uid, event, props or {})])
    check(st == 200, f"{event} from {uid} accepted", data)


def test_insurance_event():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            advance_to_local(srv, 10, 5)  # daytime: outside the 21:00-09:00 quiet hours
            t = int(time.time() * 1000)
            people = {BUY: ("mass_affluent", 35), NOSHOW: ("mass_affluent", 30), NOREG: ("mass_affluent", 45),
                      DECLINE: ("mass_affluent", 28), YOUNG: ("mass_affluent", 25), HNW: ("high_net_worth", 40)}
            recs = [{"type": "profile_set", "distinct_id": u, "time": t,
                     "properties": {"$is_login_id": True, "name": f"保险客户{i}", "tier": tier, "age": age,
                                    "city": "杭州", "mobile": f"1370000000{i}", "customer_no": f"CN{i:04d}",
                                    "wecom_external_userid": f"wx-{u}"}}
                    for i, (u, (tier, age)) in enumerate(people.items())]
            st, _, data = srv.sa_post(recs)
            check(st == 200, "profiles accepted", data)
            d = load_json(f"journeys/{KEY}.json")
            for n in d["nodes"]:
                if n["type"] == "webhook":
                    n["url"] = rx.url("/crm/policy")
            # the schedule is a fixed date: if it is still ahead, move the clock there
            at_ms = 1780279200000  # 2026-06-01 10:00 Asia/Shanghai
            if now_ms(srv) < at_ms:
                advance(srv, f"{(at_ms - now_ms(srv)) // 1000 + 1}s")
            publish(srv, KEY, definition=d)

            # ---- scheduled entry over the segment; WeCom invite ----
            scheduled = check(srv.wait_for(lambda: all(at_node(srv, u, "wait_reg") for u in IN)),
                              "scheduled entry: mass-affluent customers aged 28-45 entered, wait for registration",
                              [journey_of(srv, u) for u in IN])
            check(journey_of(srv, YOUNG) is None and journey_of(srv, HNW) is None,
                  "customers outside the segment did not enter")
            if not scheduled:
                # keep exercising the rest of the journey: admit the segment through the API
                for u in IN:
                    if journey_of(srv, u) is None:
                        srv.api("POST", f"/api/v1/journeys/{KEY}/enter", {"user": u})
                srv.wait_for(lambda: all(at_node(srv, u, "wait_reg") for u in IN))
            check(rx.wait_for(4), "four invitations reached the provider", rx.requests())
            inv = [r for r in rx.requests() if r.path == "/wecom"]
            check(len(inv) == 4 and all("家庭保障规划沙龙" in ((r.json or {}).get("text") or {}).get("content", "")
                                        for r in inv), "WeCom invitation text", [r.json for r in inv])
            check(sorted(str((r.json or {}).get("external_userid")) for r in inv) ==
                  sorted(str([f"wx-{u}"]) for u in IN),
                  "invitations addressed to the customer contact (external_userid list, docs/channels.md)",
                  [(r.json or {}).get("external_userid") for r in inv])
            check(all(Receiver.verify(r, SECRET) for r in inv), "invitations are signed")

            # ---- registration and check-in ----
            for u in (BUY, NOSHOW, DECLINE):
                send(srv, u, "EventRegistered", {"salon_id": "salon-0601"})
            check(srv.wait_for(lambda: all(at_node(srv, u, "wait_checkin") for u in (BUY, NOSHOW, DECLINE))),
                  "registrants wait for check-in")
            m = msgs_at(srv, BUY, "confirm")
            check(len(m) == 1 and m[0]["channel"] == "sms" and m[0]["to"] == "13700000000" and
                  "报名成功" in m[0]["text"], "registration confirmed by SMS", m)
            for u in (BUY, DECLINE):
                send(srv, u, "EventCheckIn", {"salon_id": "salon-0601"})
            check(srv.wait_for(lambda: all(at_node(srv, u, "wait_outcome") for u in (BUY, DECLINE))),
                  "attendees handed to an agent, journey waits for the lead outcome",
                  [journey_of(srv, u) for u in (BUY, DECLINE)])
            st, body = srv.api("GET", "/api/v1/leads?queue=insurance")
            leads = {l["user_id"]: l for l in body.get("leads", [])}
            buy_uid, dec_uid = srv.user(BUY)[1]["user_id"], srv.user(DECLINE)[1]["user_id"]
            check(set(leads) == {buy_uid, dec_uid}, "one needs-analysis lead per attendee", body)
            lb = leads.get(buy_uid, {})
            check(lb.get("priority") == "high" and lb.get("node") == "needs" and
                  lb.get("sla_due_ms", 0) - lb.get("created_ms", 0) == 2 * 86400000,
                  "needs lead: high priority, 2 day SLA", lb)
            check("35岁" in (lb.get("talk_track") or "") and "杭州" in lb["talk_track"] and
                  "保险客户0" in lb["talk_track"], "talk track names age and city", lb.get("talk_track"))
            check(any(e["event"] == "EventCheckIn" for e in lb.get("recent_events", [])),
                  "lead carries the check-in among recent events")

            # ---- the agent sells: claim, complete "purchased" -> LeadOutcome -> wait for the policy ----
            st, _ = srv.api("POST", f"/api/v1/leads/{lb.get('id')}/claim", {"assignee": "agent-12"})
            check(st == 200, "lead claimed")
            check(srv.wait_for(lambda: at_node(srv, BUY, "wait_outcome")), "a claim alone does not move the journey")
            st, _ = srv.api("POST", f"/api/v1/leads/{lb.get('id')}/complete",
                            {"outcome": "purchased", "note": "重疾险 30 万"})
            check(st == 200, "lead completed as purchased")
            check(srv.wait_for(lambda: at_node(srv, BUY, "wait_policy")), "LeadOutcome purchased -> waits for the policy",
                  journey_of(srv, BUY))
            lo = srv.wait_for(lambda: events(srv, BUY, "LeadOutcome"))
            check(len(lo) == 1 and lo[0]["properties"].get("outcome") == "purchased" and
                  lo[0]["properties"].get("assignee") == "agent-12" and
                  lo[0]["properties"].get("journey") == KEY, "the outcome is a LeadOutcome event", lo)
            st, one = srv.api("GET", f"/api/v1/leads/{lb.get('id')}")
            check(one.get("status") == "completed" and one.get("outcome") == "purchased" and
                  one.get("note") == "重疾险 30 万", "lead record completed", one)
            ld = leads.get(dec_uid, {})
            st, _ = srv.api("POST", f"/api/v1/leads/{ld.get('id')}/complete", {"outcome": "declined"})
            check(st == 200, "second lead completed as declined")
            check(srv.wait_for(lambda: journey_of(srv, DECLINE) is None), "declined -> the journey ends")
            st, _ = srv.api("POST", f"/api/v1/leads/{ld.get('id')}/complete", {"outcome": "maybe"})
            check(st == 400, "an unknown outcome is refused", st)

            # ---- policy issued: CRM webhook, welcome ----
            send(srv, BUY, "PolicyIssued", {"policy_no": "P20260601-0001", "product": "重疾险"})
            check(srv.wait_for(lambda: at_node(srv, BUY, "settle")), "policy -> CRM, welcome, 7 day settle",
                  journey_of(srv, BUY))
            crm = srv.wait_for(lambda: [r for r in rx.requests() if r.path == "/crm/policy"])
            check(crm and crm[0].json == {"customer_no": "CN0000", "policy_no": "P20260601-0001", "journey": KEY},
                  "CRM webhook body rendered from profile, event and journey", crm and crm[0].body)
            m = msgs_at(srv, BUY, "welcome")
            check(len(m) == 1 and "P20260601-0001" in m[0]["text"] and m[0]["channel"] == "wecom",
                  "welcome message names the policy", m)

            # ---- +5 days: the one who never registered gets the SMS reminder ----
            advance(srv, "5d1m")
            check(srv.wait_for(lambda: at_node(srv, NOREG, "wait_reg2")), "no registration in 5 days -> reminder",
                  journey_of(srv, NOREG))
            m = msgs_at(srv, NOREG, "remind")
            check(len(m) == 1 and "名额有限" in m[0]["text"] and m[0]["to"] == "13700000002",
                  "SMS invitation reminder", m)
            # ---- +7 days after the policy: referral ask ----
            advance(srv, "2d")
            check(srv.wait_for(lambda: journey_of(srv, BUY) is None), "after 7 days the referral ask, then done",
                  journey_of(srv, BUY))
            m = msgs_at(srv, BUY, "referral")
            check(len(m) == 1 and "推荐" in m[0]["text"], "referral ask sent over WeCom", m)
            st, u = srv.user(BUY)
            check(u["tags"].get("referral_asked") is True, "referral_asked tag set", u.get("tags"))
            advance(srv, "1d")
            check(srv.wait_for(lambda: journey_of(srv, NOREG) is None), "still no registration after 3 more days: out")
            # ---- +14 days: registered but absent -> replay in the inbox ----
            advance(srv, "6d")
            check(srv.wait_for(lambda: journey_of(srv, NOSHOW) is None), "no check-in in 14 days -> replay, out",
                  journey_of(srv, NOSHOW))
            st, inbox = srv.api("GET", f"/api/v1/inbox/{NOSHOW}")
            check(st == 200 and [x["title"] for x in inbox.get("messages", [])] == ["活动回放"],
                  "non-attendee gets the replay in the inbox", inbox)
            check(not msgs_at(srv, NOSHOW, "needs") and not [l for l in leads.values() if l["user_id"] ==
                                                            srv.user(NOSHOW)[1]["user_id"]],
                  "no lead for the non-attendee")

            # delivery outcomes and events
            out = [m for u in IN for m in messages(srv, u) if m["kind"] != "inbox"]
            check(srv.wait_for(lambda: all(m["status"] == "sent" for u in IN for m in messages(srv, u)
                                           if m["kind"] != "inbox")),
                  "every outbound message ended sent", [(m["node"], m["status"]) for m in out])
            def exits():
                return {u: [e["properties"]["reason"] for e in events(srv, u, "$JourneyExited")] for u in IN}
            want_ex = {BUY: ["exit"], NOSHOW: ["exit"], NOREG: ["exit"], DECLINE: ["exit"]}
            ex = srv.wait_for(lambda: exits() == want_ex and exits()) or exits()
            check(ex == {BUY: ["exit"], NOSHOW: ["exit"], NOREG: ["exit"], DECLINE: ["exit"]},
                  "one exit each, at the end node", ex)
            # reentry "never": a re-run of the schedule does not bring anyone back
            st, _ = srv.api("POST", f"/api/v1/journeys/{KEY}/enter", {"user": BUY})
            time.sleep(0.3)
            check(journey_of(srv, BUY) is None and len(events(srv, BUY, "$JourneyEntered")) == 1,
                  "reentry never: an explicit enter does not re-admit")

            # ---- report ----
            st, rep = srv.api("GET", f"/api/v1/journeys/{KEY}/report")
            check(st == 200 and rep.get("entered") == 4, "report: four entries", rep.get("entered"))
            check(rep.get("goal_reached") == 1, "report: one policy (the goal)", rep.get("goal_reached"))
            nodes = {n["id"]: n for n in rep.get("nodes", [])}
            want = {("invite", "sent"): 4, ("wait_reg", "entered"): 4, ("remind", "sent"): 1,
                    ("wait_reg2", "entered"): 1, ("confirm", "sent"): 3, ("wait_checkin", "entered"): 3,
                    ("replay", "sent"): 1, ("needs", "entered"): 2, ("needs", "sent"): 2,
                    ("wait_outcome", "entered"): 2, ("purchased", "entered"): 2, ("wait_policy", "entered"): 1,
                    ("crm", "entered"): 1, ("welcome", "sent"): 1, ("referral", "sent"): 1, ("tag", "entered"): 1,
                    ("end", "exited"): 4}
            got = {k: nodes.get(k[0], {}).get(k[1]) for k in want}
            check(got == want, "report: per-node counts", {k: (got[k], v) for k, v in want.items() if got[k] != v})
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            check(edges.get(("wait_checkin", "needs")) == 2 and edges.get(("wait_checkin", "replay")) == 1 and
                  edges.get(("purchased", "wait_policy")) == 1 and edges.get(("purchased", "end")) == 1 and
                  edges.get(("wait_reg", "confirm")) == 3 and edges.get(("wait_reg", "remind")) == 1 and
                  edges.get(("wait_reg2", "end")) == 1 and edges.get(("settle", "referral")) == 1,
                  "report: edges", edges)
        finally:
            srv.cleanup()


run_case(test_insurance_event)
finish()
