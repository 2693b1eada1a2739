"""Seed scenario 贷款全生命周期陪伴 (loan stages) end to end: awareness ->
comparison -> first loan -> repayment -> renewal, driven by real events over
HTTP with the test clock for the 3 / 7 / 45 / 30 day waits. Four customers
take different roads: one goes all the way and renews, one stalls at the
comparison stage (and gets the advisor follow-up), one never compares (SMS
nudge, then the follow-up), one applies but is not disbursed in time (an
urgent "stuck" lead, then the disbursal). Each stage's profile value and
message is checked, and so are the report's per-node counts and edges."""
import time

from journeys import SECRET, advance, advance_to_local, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

KEY = "loan_stages"
FULL, STALL, NOCMP, STUCK = "ln_full_01", "ln_stall_02", "ln_nocmp_03", "ln_stuck_04"
USERS = [FULL, STALL, NOCMP, STUCK]


def journey_of(srv, uid, key=KEY):
    st, u = srv.user(uid)
    if st != 200:
        return None
    return next((j for j in u["journeys"] if j["journey"] == key), None)


def at_node(srv, uid, node):
    return (journey_of(srv, uid) or {}).get("node") == node


def profile(srv, uid):
    return srv.user(uid)[1].get("profile", {})


def stage_is(srv, uid, stage):
    return srv.wait_for(lambda: profile(srv, uid).get("loan_stage") == stage)


def messages(srv, uid):
    st, body = srv.api("GET", f"/api/v1/messages?user={uid}")
    return body.get("messages", []) if st == 200 else []


def msgs_at(srv, uid, node):
    return [m for m in messages(srv, uid) if m["node"] == node]


def ev_names(srv, uid):
    return [e["event"] for e in srv.events(uid, limit=200)[1].get("events", [])]


def leads(srv, queue):
    st, body = srv.api("GET", f"/api/v1/leads?queue={queue}")
    return body.get("leads", []) if st == 200 else []


def user_id(srv, uid):
    return srv.user(uid)[1]["user_id"]


def send(srv, uid, event, props=None):
    st, _, data = srv.sa_post([track(uid, event, props or {})])
    check(st == 200, f"{event} from {uid} accepted", data)


def test_loan_stages():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            publish(srv, KEY)
            advance_to_local(srv, 10, 5)  # daytime in Shanghai, outside 21:00-08:30
            t = int(time.time() * 1000)
            recs = [{"type": "profile_set", "distinct_id": u, "time": t,
                     "properties": {"$is_login_id": True, "name": f"贷款客户{i}", "mobile": f"1390000000{i}",
                                    "push_token": f"tok-{u}", "timezone": "Asia/Shanghai"}}
                    for i, u in enumerate(USERS)]
            st, _, data = srv.sa_post(recs)
            check(st == 200, "profiles accepted", data)
            uids = {u: None for u in USERS}

            # ---- awareness: every page viewer enters, gets the intro push ----
            st, _, data = srv.sa_post([track(u, "LoanPageView", {"page": "consumer_loan"}) for u in USERS])
            check(st == 200, "LoanPageView accepted", data)
            check(srv.wait_for(lambda: all(at_node(srv, u, "wait_compare") for u in USERS)),
                  "every viewer entered and waits for LoanCompare", [journey_of(srv, u) for u in USERS])
            uids = {u: user_id(srv, u) for u in USERS}
            check(all(profile(srv, u).get("loan_stage") == "awareness" for u in USERS),
                  "stage awareness written to the profile", [profile(srv, u) for u in USERS])
            check(rx.wait_for(4), "four intro pushes reached the provider", rx.requests())
            push = [r for r in rx.requests() if r.path == "/push"]
            check(len(push) == 4 and all("可贷额度" in (r.json or {}).get("body", "") for r in push),
                  "intro push carries the loan_intro text", [r.json for r in push])
            check(all(Receiver.verify(r, SECRET) for r in push), "intro pushes are signed")
            check({(r.json or {}).get("to") for r in push} == {f"tok-{u}" for u in USERS},
                  "each push addressed to the customer's push token", [r.json for r in push])
            m = msgs_at(srv, FULL, "intro")
            check(len(m) == 1 and m[0]["title"] == "额度测算" and "贷款客户0" in m[0]["text"],
                  "intro message personalised with the name", m)

            # ---- comparison (FULL, STALL, STUCK) ----
            for u in (FULL, STALL, STUCK):
                send(srv, u, "LoanCompare", {"products": 3})
            check(srv.wait_for(lambda: all(at_node(srv, u, "wait_apply") for u in (FULL, STALL, STUCK))),
                  "comparers moved on to wait_apply", [journey_of(srv, u) for u in (FULL, STALL, STUCK)])
            check(all(profile(srv, u).get("loan_stage") == "comparison" for u in (FULL, STALL, STUCK)),
                  "stage comparison written")
            st, inbox = srv.api("GET", f"/api/v1/inbox/{STALL}")
            check(st == 200 and len(inbox.get("messages", [])) == 1 and
                  inbox["messages"][0]["title"] == "贷款怎么选", "comparison guide in the in-app inbox", inbox)
            check(at_node(srv, NOCMP, "wait_compare"), "the customer who did not compare still waits")

            # ---- first loan (FULL, STUCK apply) ----
            send(srv, FULL, "LoanApply", {"amount": 50000})
            send(srv, STUCK, "LoanApply", {"amount": 80000})
            check(srv.wait_for(lambda: all(at_node(srv, u, "wait_disburse") for u in (FULL, STUCK))),
                  "applicants wait for disbursal")
            check(stage_is(srv, FULL, "first_loan"), "stage first_loan written", profile(srv, FULL))
            send(srv, FULL, "LoanDisbursed", {"amount": 50000})
            check(srv.wait_for(lambda: at_node(srv, FULL, "wait_due")), "disbursed customer waits for a due date",
                  journey_of(srv, FULL))
            check(stage_is(srv, FULL, "repayment"), "stage repayment written", profile(srv, FULL))
            m = msgs_at(srv, FULL, "disbursed")
            check(len(m) == 1 and "50000" in m[0]["text"] and m[0]["channel"] == "push",
                  "disbursal push names the amount", m)

            # ---- +3 days: nudge for NOCMP, stuck lead for STUCK ----
            advance(srv, "3d1m")
            check(srv.wait_for(lambda: at_node(srv, NOCMP, "wait_apply")), "no comparison within 3 days -> nudge",
                  journey_of(srv, NOCMP))
            m = msgs_at(srv, NOCMP, "nudge")
            check(len(m) == 1 and m[0]["channel"] == "sms" and m[0]["to"] == "13900000002" and
                  "随借随还" in m[0]["text"], "SMS nudge sent to the mobile number", m)
            check(srv.wait_for(lambda: at_node(srv, STUCK, "wait_disburse2")), "not disbursed within 3 days -> lead",
                  journey_of(srv, STUCK))
            stuck = [l for l in leads(srv, "loan") if l["user_id"] == uids[STUCK]]
            check(len(stuck) == 1 and stuck[0]["node"] == "apply_stuck" and stuck[0]["priority"] == "high" and
                  "3天未放款" in (stuck[0].get("talk_track") or ""), "stuck application lead with its talk track",
                  stuck)
            if stuck:
                check(stuck[0]["sla_due_ms"] - stuck[0]["created_ms"] == 4 * 3600000, "stuck lead SLA is 4 h",
                      stuck[0])
            send(srv, STUCK, "LoanDisbursed", {"amount": 80000})
            check(srv.wait_for(lambda: at_node(srv, STUCK, "wait_due")), "late disbursal continues to repayment")

            # ---- repayment: a due reminder, paid; then a second one, missed ----
            send(srv, FULL, "RepaymentDue", {"due_date": "2027-01-10", "amount": 1250})
            check(srv.wait_for(lambda: at_node(srv, FULL, "wait_repaid")), "due date -> reminder, waits for payment")
            m = msgs_at(srv, FULL, "due_reminder")
            check(len(m) == 1 and "2027-01-10" in m[0]["text"] and "1250" in m[0]["text"],
                  "repayment reminder SMS names date and amount", m)
            send(srv, FULL, "RepaymentMade", {"amount": 1250})
            check(srv.wait_for(lambda: at_node(srv, FULL, "wait_due")), "payment made -> back to wait_due")

            # ---- +7 days since comparing: STALL gets the follow-up ----
            advance(srv, "4d")
            check(srv.wait_for(lambda: journey_of(srv, STALL) is None), "stalled customer left after the follow-up",
                  journey_of(srv, STALL))
            assist = [l for l in leads(srv, "loan") if l["node"] == "apply_assist"]
            check([l["user_id"] for l in assist] == [uids[STALL]], "one apply-assist lead, for the stalled customer",
                  assist)
            if assist:
                check("对比贷款产品后7天未申请" in (assist[0].get("talk_track") or "") and
                      "贷款客户1" in assist[0]["talk_track"], "follow-up talk track names the customer", assist[0])
                check(assist[0]["sla_due_ms"] - assist[0]["created_ms"] == 86400000, "follow-up SLA 1 d")
            # op events reach the log just after the state change commits
            ex = srv.wait_for(lambda: [e for e in srv.events(STALL, limit=100)[1]["events"]
                                       if e["event"] == "$JourneyExited"])
            check(len(ex) == 1 and ex[0]["properties"]["reason"] == "exit" and ex[0]["properties"]["node"] == "end",
                  "stalled customer exited at the end node", ex)
            # re-entry after exit needs 90 days
            send(srv, STALL, "LoanPageView", {"page": "consumer_loan"})
            time.sleep(0.3)
            check(journey_of(srv, STALL) is None, "no re-entry within 90 days of the exit")

            # a second due date that is not paid -> overdue care lead (urgent)
            send(srv, FULL, "RepaymentDue", {"due_date": "2027-02-10", "amount": 1250})
            check(srv.wait_for(lambda: at_node(srv, FULL, "wait_repaid")), "second due date -> waits for payment")
            advance(srv, "3d")
            advance(srv, "1d1m")
            check(srv.wait_for(lambda: journey_of(srv, NOCMP) is None),
                  "customer who never compared left after the follow-up (3 + 7 days)", journey_of(srv, NOCMP))
            check(srv.wait_for(lambda: at_node(srv, FULL, "wait_due")), "missed payment -> care lead -> wait_due",
                  journey_of(srv, FULL))
            care = leads(srv, "loan_service")
            check(len(care) == 1 and care[0]["user_id"] == uids[FULL] and care[0]["priority"] == "urgent" and
                  "勿催收" in (care[0].get("talk_track") or ""), "overdue care lead, urgent, with care wording", care)
            check(len(msgs_at(srv, FULL, "due_reminder")) == 2, "two due reminders sent")

            # ---- renewal: 45 days without a due date ----
            advance(srv, "45d1m")
            check(srv.wait_for(lambda: all(at_node(srv, u, "wait_renewal") for u in (FULL, STUCK))),
                  "45 quiet days -> renewal offer, both borrowers wait for renewal",
                  [journey_of(srv, u) for u in (FULL, STUCK)])
            check(stage_is(srv, FULL, "renewal") and profile(srv, STUCK).get("loan_stage") == "renewal",
                  "stage renewal written")
            for u in (FULL, STUCK):
                m = msgs_at(srv, u, "renewal_offer")
                check(len(m) == 1 and "续贷" in m[0]["text"], f"renewal offer pushed to {u}", m)
            send(srv, FULL, "LoanRenewal", {"amount": 60000})
            check(srv.wait_for(lambda: journey_of(srv, FULL) is None), "renewal -> tagged and done")
            st, u = srv.user(FULL)
            check(u.get("tags", {}).get("loan_loyal") is True, "loyal tag set on renewal", u.get("tags"))
            advance(srv, "30d1m")
            check(srv.wait_for(lambda: journey_of(srv, STUCK) is None), "no renewal in 30 days -> renewal call")
            call = [l for l in leads(srv, "loan") if l["node"] == "renewal_call"]
            check([l["user_id"] for l in call] == [uids[STUCK]], "renewal call lead for the one who did not renew",
                  call)

            # every pushed / texted message reached the provider once and is "sent"
            sent_ok = srv.wait_for(lambda: all(m["status"] == "sent" for u in USERS for m in messages(srv, u)
                                               if m["kind"] != "inbox"))
            check(sent_ok, "every outbound message ended sent",
                  [(m["node"], m["status"]) for u in USERS for m in messages(srv, u)])
            ids = [m["id"] for u in USERS for m in messages(srv, u) if m["kind"] != "inbox"]
            dl = rx.delivered_ids()
            check(sorted(ids) == sorted(dl) and all(v == 1 for v in dl.values()),
                  "the provider saw each message id exactly once", (len(ids), dl))
            want_ev = {"$JourneyEntered", "$MessagePrepared", "$MessageSent", "$LeadCreated", "$JourneyExited"}
            names = srv.wait_for(lambda: want_ev <= set(ev_names(srv, FULL)) and ev_names(srv, FULL)) or \
                ev_names(srv, FULL)
            check({"$JourneyEntered", "$MessagePrepared", "$MessageSent", "$LeadCreated", "$JourneyExited"} <= set(names),
                  "op events in the borrower's history", sorted(set(names)))

            # ---- report ----
            st, rep = srv.api("GET", f"/api/v1/journeys/{KEY}/report")
            check(st == 200 and rep.get("entered") == 4, "report: four entries", rep.get("entered"))
            check(rep.get("goal_reached") == 2, "report: two applications within 30 days (the goal)",
                  rep.get("goal_reached"))
            nodes = {n["id"]: n for n in rep.get("nodes", [])}

            def node(nid, field):
                return nodes.get(nid, {}).get(field)

            want = {("awareness", "entered"): 4, ("intro", "sent"): 4, ("wait_compare", "entered"): 4,
                    ("comparison", "entered"): 3, ("guide", "sent"): 3, ("nudge", "sent"): 1,
                    ("wait_apply", "entered"): 4, ("apply_assist", "entered"): 2, ("apply_assist", "sent"): 2,
                    ("first_loan", "entered"): 2, ("apply_stuck", "entered"): 1, ("wait_disburse2", "entered"): 1,
                    ("disbursed", "sent"): 2, ("repayment", "entered"): 2, ("wait_due", "entered"): 4,
                    ("due_reminder", "sent"): 2, ("overdue_care", "entered"): 1, ("renewal", "entered"): 2,
                    ("renewal_offer", "sent"): 2, ("renewed", "entered"): 1, ("renewal_call", "entered"): 1,
                    ("end", "entered"): 4, ("end", "exited"): 4, ("wait_due", "waiting"): 0,
                    ("wait_renewal", "waiting"): 0, ("intro", "suppressed"): 0}
            got = {k: node(*k) for k in want}
            check(got == want, "report: per-node counts",
                  {k: (got[k], v) for k, v in want.items() if got[k] != v})
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            want_e = {("awareness", "intro"): 4, ("intro", "wait_compare"): 4, ("wait_compare", "comparison"): 3,
                      ("wait_compare", "nudge"): 1, ("comparison", "guide"): 3, ("guide", "wait_apply"): 3,
                      ("nudge", "wait_apply"): 1, ("wait_apply", "first_loan"): 2,
                      ("wait_apply", "apply_assist"): 2, ("apply_assist", "end"): 2,
                      ("first_loan", "wait_disburse"): 2, ("wait_disburse", "disbursed"): 1,
                      ("wait_disburse", "apply_stuck"): 1, ("apply_stuck", "wait_disburse2"): 1,
                      ("wait_disburse2", "disbursed"): 1, ("disbursed", "repayment"): 2,
                      ("repayment", "wait_due"): 2, ("wait_due", "due_reminder"): 2,
                      ("due_reminder", "wait_repaid"): 2, ("wait_repaid", "wait_due"): 1,
                      ("wait_repaid", "overdue_care"): 1, ("overdue_care", "wait_due"): 1,
                      ("wait_due", "renewal"): 2, ("renewal", "renewal_offer"): 2,
                      ("renewal_offer", "wait_renewal"): 2, ("wait_renewal", "renewed"): 1,
                      ("wait_renewal", "renewal_call"): 1, ("renewed", "end"): 1, ("renewal_call", "end"): 1}
            check(edges == want_e, "report: edges",
                  {k: (edges.get(k), want_e.get(k)) for k in set(edges) | set(want_e) if edges.get(k) != want_e.get(k)})

            # ---- quiet hours (21:00-08:30, hold): a late-evening visitor gets the intro at 08:30 ----
            night = "ln_night_05"
            srv.sa_post([{"type": "profile_set", "distinct_id": night, "time": int(time.time() * 1000),
                          "properties": {"$is_login_id": True, "name": "夜间客户", "push_token": f"tok-{night}"}}])
            advance_to_local(srv, 22, 0)
            before = len(rx.requests())
            send(srv, night, "LoanPageView", {"page": "consumer_loan"})
            j = srv.wait_for(lambda: journey_of(srv, night))
            check(j and j["node"] == "intro" and j["state"] == "held_quiet_hours", "intro held for quiet hours", j)
            time.sleep(0.3)
            check(not msgs_at(srv, night, "intro") and len(rx.requests()) == before, "nothing sent at 22:00")
            morning = advance_to_local(srv, 8, 31)
            check(srv.wait_for(lambda: at_node(srv, night, "wait_compare")), "released at 08:30",
                  journey_of(srv, night))
            m = msgs_at(srv, night, "intro")
            check(len(m) == 1 and morning - 60000 - 1000 <= m[0]["created_ms"] <= morning + 5000,
                  "intro prepared when quiet hours ended", (m, morning))
            check(srv.wait_for(lambda: [r for r in rx.requests() if (r.json or {}).get("to") == f"tok-{night}"]),
                  "and pushed right away")
        finally:
            srv.cleanup()


run_case(test_loan_stages)
finish()
