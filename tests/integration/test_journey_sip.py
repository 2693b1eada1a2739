"""Seed scenario 基金定投陪伴 (fund SIP companion) end to end: real events over
HTTP, a real local receiver for push / WeCom, the test clock for the 2 h wait
and the 3 day timeout, the A/B split with a control arm, the goal, the
advisor lead with its talk track, lead claim / complete, and the report."""
import time

from journeys import SECRET, advance, advance_to_local, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

USERS = [f"c5{i:07d}" for i in range(40)]


def wait_for(srv, fn, timeout=10.0):
    return srv.wait_for(fn, timeout)


def journey_of(srv, uid, key="fund_sip_companion"):
    st, u = srv.user(uid)
    if st != 200:
        return None
    for j in u["journeys"]:
        if j["journey"] == key:
            return j
    return None


def test_fund_sip_companion():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            publish(srv, "fund_sip_companion")
            advance_to_local(srv, 10, 0)  # daytime in Shanghai: outside quiet hours
            t = int(time.time() * 1000)
            recs = [{"type": "item_set", "item_type": "fund", "item_id": "000001", "time": t,
                     "properties": {"fund_name": "华夏成长混合", "fund_type": "mixed", "risk_level": "R3"}}]
            for i, uid in enumerate(USERS):
                risk = "C2" if i % 8 == 0 else "C4"  # every 8th customer is below C3
                recs.append({"type": "profile_set", "distinct_id": uid, "time": t,
                             "properties": {"$is_login_id": True, "name": f"客户{i}", "risk_level": risk,
                                            "timezone": "Asia/Shanghai", "push_token": f"tok-{uid}",
                                            "wecom_external_userid": f"wx-{uid}"}})
            st, _, data = srv.sa_post(recs)
            check(st == 200, "profiles and the fund accepted", data)
            st, _, data = srv.sa_post([track(uid, "ViewFundDetail", {"fund_code": "000001", "fund_type": "mixed"})
                                       for uid in USERS])
            check(st == 200, "ViewFundDetail events accepted", data)
            j0 = wait_for(srv, lambda: all(journey_of(srv, u) for u in USERS))
            check(j0, "every viewer entered the journey")
            j = journey_of(srv, USERS[1])
            check(j and j["node"] == "wait1" and j["state"] == "waiting", "waiting 2 h at wait1", j)
            # a second view does not re-enter (one live instance)
            srv.sa_post([track(USERS[1], "ViewFundDetail", {"fund_code": "000001", "fund_type": "mixed"})])
            time.sleep(0.3)
            advance(srv, "2h1m")
            low = [u for i, u in enumerate(USERS) if i % 8 == 0]
            high = [u for i, u in enumerate(USERS) if i % 8 != 0]
            check(wait_for(srv, lambda: all(journey_of(srv, u) is None for u in low)),
                  "customers below C3 left at the risk condition")
            check(wait_for(srv, lambda: all((journey_of(srv, u) or {}).get("node") == "await" for u in high)),
                  "customers C3 and above wait for StartSIP",
                  [journey_of(srv, u) for u in high[:3]])
            arms = {u: (journey_of(srv, u) or {}).get("arm") for u in high}
            senders = [u for u in high if arms[u] in ("push", "wecom")]
            control = [u for u in high if arms[u] == "control"]
            check(len(senders) + len(control) == len(high), "every customer got an arm", arms)
            check(wait_for(srv, lambda: len(rx.delivered_ids()) >= len(senders)),
                  "one message per non-control customer reached the receiver",
                  (len(rx.delivered_ids()), len(senders)))
            reqs = rx.requests()
            paths = sorted({r.path for r in reqs})
            check(set(paths) <= {"/push", "/wecom"}, "messages went to push and WeCom", paths)
            check(all(Receiver.verify(r, SECRET) for r in reqs), "every request carries a valid signature")
            push = [r for r in reqs if r.path == "/push"]
            check(push and all("华夏成长混合" in (r.json or {}).get("body", "") for r in push),
                  "push text personalised with the fund name", [r.json for r in push[:2]])
            wecom = [r for r in reqs if r.path == "/wecom"]
            check(all((r.json or {}).get("msgtype") == "text" for r in wecom), "WeCom messages in WeCom's shape",
                  [r.json for r in wecom[:2]])
            # message records and ids
            st, msgs = srv.api("GET", f"/api/v1/messages?user={senders[0]}")
            check(st == 200 and len(msgs["messages"]) == 1, "the customer's message is listed", msgs)
            if msgs.get("messages"):
                m = msgs["messages"][0]
                check(rx.by_id(m["id"]), "the provider saw the same message id", m["id"])
                ok = wait_for(srv, lambda: srv.api("GET", f"/api/v1/messages/{m['id']}")[1].get("status") == "sent")
                check(ok, "delivery outcome recorded on the message")
            # the first sender converts within the goal window
            conv = senders[0]
            srv.sa_post([track(conv, "StartSIP", {"fund_code": "000001", "amount": 500})])
            check(wait_for(srv, lambda: journey_of(srv, conv) is None), "StartSIP reached the goal and exited")
            advance(srv, "3d1m")
            waiting = [u for u in high if u != conv]
            check(wait_for(srv, lambda: all(journey_of(srv, u) is None for u in waiting)),
                  "after 3 days without StartSIP the others left through the lead node")
            st, leads = srv.api("GET", "/api/v1/leads?queue=wealth")
            check(st == 200 and leads["count"] == len(waiting), "one advisor lead per customer who did not convert",
                  (leads.get("count"), len(waiting)))
            lead = leads["leads"][0] if leads.get("leads") else {}
            check("华夏成长混合" in (lead.get("talk_track") or ""), "talk track names the fund", lead.get("talk_track"))
            check(lead.get("recent_events") and lead["recent_events"][0]["event"], "lead carries recent events")
            check(lead.get("sla_due_ms", 0) > lead.get("created_ms", 0), "lead has an SLA")
            # PII: an advisor key sees the mobile masked, admin sees it whole
            st, key = srv.api("POST", "/api/v1/keys", {"role": "advisor"})
            st, masked = srv.api("GET", f"/api/v1/leads/{lead.get('id')}", key=key["key"])
            check(st == 200 and masked["profile"]["name"].endswith("**"), "advisor sees the name masked", masked.get("profile"))
            lid = lead.get("id", "")
            st, _ = srv.api("POST", f"/api/v1/leads/{lid}/claim", {"assignee": "advisor-7"})
            check(st == 200, "lead claimed")
            st, _ = srv.api("POST", f"/api/v1/leads/{lid}/complete", {"outcome": "interested", "note": "约了周五面谈"})
            check(st == 200, "lead completed")
            st, one = srv.api("GET", f"/api/v1/leads/{lid}")
            check(one.get("status") == "completed" and one.get("assignee") == "advisor-7" and
                  one.get("outcome") == "interested", "lead state recorded", one)
            uid = lead.get("user_id") or "0"
            ev = wait_for(srv, lambda: [e for e in srv.events(uid, id_type="user_id")[1].get("events", [])
                                        if e["event"] == "LeadOutcome"])
            check(ev and ev[0]["properties"]["outcome"] == "interested", "the outcome became an event", ev)
            st, rep = srv.api("GET", "/api/v1/journeys/fund_sip_companion/report")
            check(st == 200 and rep["entered"] == len(USERS), "report: entries", rep.get("entered"))
            nodes = {n["id"]: n for n in rep.get("nodes", [])}
            check(nodes.get("risk", {}).get("entered") == len(USERS), "report: every entry passed the risk check")
            check(nodes.get("lead", {}).get("entered") == len(waiting), "report: lead node entered", nodes.get("lead"))
            check(rep.get("goal_reached") == 1, "report: one conversion", rep.get("goal_reached"))
            split = rep["splits"][0] if rep.get("splits") else {}
            arms_rep = {a["name"]: a for a in split.get("arms", [])}
            check(sum(a["entered"] for a in arms_rep.values()) == len(high), "report: arm entries add up", arms_rep)
            check(any("ci95" in a for a in arms_rep.values()) or not control,
                  "report: non-control arms compared with control", arms_rep)
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            check(edges.get(("wait1", "risk")) == len(USERS), "report: edge counts", edges)
            # operational events in the stream
            evs = srv.events(senders[1], limit=50)[1]["events"]
            names = {e["event"] for e in evs}
            check({"$JourneyEntered", "$MessagePrepared", "$MessageSent"} <= names,
                  "journey, message prepared and sent events in the customer's history", names)
        finally:
            srv.cleanup()


run_case(test_fund_sip_companion)
finish()
