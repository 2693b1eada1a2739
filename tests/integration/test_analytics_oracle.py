"""Differential test of Waymark's analytics queries against tests/oracle.

A seeded generator writes an adversarial event history in Sensors NDJSON:
~400 customers, ~12,000 events over 41 local days (2026-09-24 .. 2026-11-03,
UTC+8): sessions that straddle local midnight, events on the first and last
millisecond of the queried ranges (October, its Mondays), equal timestamps
within one customer, gaps of exactly the session gap, a file out of time
order, anonymous visitors merged into login users (track_signup, an envelope
anonymous_id, an IDM 3.0 identities map; in any file order, so some merges
find two users to fold and some none), a long tail of rare event names (for
the $other of paths), and properties of mixed types: numeric-looking strings
("2000", "000001", "-1e3"), level strings ("R3"), datetime-looking strings of
a string property (the store keeps those in datetime columns), floats whose
%.17g text is long, bools, lists, nulls, absent values, and a few records
whose property type clashes with the registered one, which the import must
reject (the schema registry refuses a number property holding a string).

Three layouts of the same data:
  tail    import only: every event in the uncompacted log tail;
  parts   a copy of tail after `waymark compact`;
  split   first half of the file imported and compacted, second half imported.
The file is imported in 8 consecutive pieces (one `waymark import` each, so
that no run would last the 10 s after which the engine's compactor, were it
running in `waymark import`, compacts a tail), after a one-record priming
file (user "schema-prime", event SchemaPrime in January) that registers every
property's type, so which records are rejected does not depend on how the
import schedules chunks. The manifests must show each layout's premise: no
rows in parts, all, some.

For each layout:
  1. `waymark query export` is checked against the generator's own knowledge:
     one line per kept track record (track_signup included, rejected lines
     not), each customer's events (merged visitors included) under one user
     id and no two customers under one, the generated times, names and
     (non-$) properties, and per user i in (time, file order);
  2. the export goes to the oracle (one node process answering every kind but
     attribution through oracle.mjs's answer(), and tests/oracle/attribution.py),
     and every query of QUERIES is compared with
     `waymark query KIND FILE --data DIR --format json`: integers, strings,
     bools and nulls exactly, floats within 1e-9 relative (1e-12 absolute
     near 0); every difference is printed with its JSON path;
  3. the answers of parts and split must equal those of tail.
The oracle's answers must be non-trivial (non-zero counts, groups cut into
$other, drop-offs at several steps, ...), so a drift of the generator that
makes a query vacuous fails the test too.

    python3 tests/integration/test_analytics_oracle.py [--dump DIR] [--oracle-only] [--seed N]

--dump DIR writes the inputs, each layout's export, the queries and both
answers (answers/LAYOUT/NAME.{waymark,oracle}.json). --oracle-only runs no
waymark: the oracle answers the generator's expected export (to develop the
queries). A missing waymark command is a failure, not a skip. Equal
timestamps are only generated where Waymark stores both events under one user
id: across a merge, (time, log sequence) orders nothing, since the two users'
events may sit in different partitions.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import wmtest
from wmtest import check, finish, run_case

ORACLE_DIR = os.path.join(wmtest.ROOT, "tests", "oracle")
DAY = 86400000
OFF_MS = 480 * 60000
DAY0 = datetime.date(2026, 9, 24)      # first local day with events
NDAYS = 41                             # .. 2026-11-03
EPOCH = datetime.date(1970, 1, 1)
PRIME_USER = "schema-prime"
# The file is imported in CHUNKS consecutive runs of `waymark import` (a
# migration in batches); should an import ever compact on its own (the
# engine's compactor takes a tail once it is 10 s old), short runs keep the
# tail layout uncompacted, and the manifests are checked anyway.
CHUNKS = 8

ap = argparse.ArgumentParser()
ap.add_argument("--dump", help="write inputs, exports, queries and answers here")
ap.add_argument("--oracle-only", action="store_true", help="no waymark: the oracle on the expected export")
ap.add_argument("--seed", type=int, default=20261001)
ARGS = ap.parse_args()


def local_ms(day_index, ms_of_day):
    """UTC ms of local (UTC+8) day DAY0+day_index at ms_of_day."""
    return ((DAY0 - EPOCH).days + day_index) * DAY + ms_of_day - OFF_MS


# ---------------------------------------------------------------- generator

CITIES = ["上海", "北京", "深圳", "杭州", "成都", "广州", "南京", "武汉", "西安", "苏州",
          "重庆", "天津", "Zürich", "hong kong", "Hong Kong"]
CHANNELS = ["huawei", "xiaomi", "appstore", "oppo", "vivo", "wechat_mp", "h5", "baidu"]
FUNDS = ["000001", "110011", "161725", "005827", "001632", "519674", "000961", "110022"]
RISKS = ["R1", "R2", "R3", "R4", "R5"]
JOURNEYS = ["j_sip_reminder", "j_ipo_alert", "j_maturity", "j_welcome", "j_dormant"]
TOPICS = ["market", "fund_tips", "ipo", "pension", "tax"]
TAGS = ["hot", "new", "low_fee", "esg", "index"]
# ref: a string property whose values look like different types; registered
# as a string by the priming record, its datetime-looking values are strings
REFS = ["000001", "2000", "-1e3", "2.5", "abc", "R3", "2026-10-05", "2026-10-05 10:00:00",
        "2026-10-05 10:00:00.250", "2026-10-31 23:59:59", " 5", ""]
RARE = ["Tap_%s" % c for c in "abcdefghijklmnopqrstuvwxyz"]   # a long tail of names
MAIN = ["$AppStart", "ReadArticle", "ViewFundDetail", "CompareFunds", "SubscribeFund", "$MessageSent"]
NEXT = {  # session Markov chain: (next name, weight); None ends the session
    "$AppStart": [("ReadArticle", 4), ("ViewFundDetail", 5), ("$AppStart", 0.3), (None, 1)],
    "ReadArticle": [("ReadArticle", 3), ("ViewFundDetail", 4), (None, 2.5)],
    "ViewFundDetail": [("CompareFunds", 4), ("ViewFundDetail", 3), ("SubscribeFund", 1.2),
                       ("ReadArticle", 1), (None, 2)],
    "CompareFunds": [("SubscribeFund", 3), ("ViewFundDetail", 3), ("CompareFunds", 0.5), (None, 2.5)],
    "SubscribeFund": [("ViewFundDetail", 1.5), ("ReadArticle", 1), (None, 4)],
}


def wpick(rnd, pairs):
    tot = sum(w for _, w in pairs)
    x = rnd.random() * tot
    for v, w in pairs:
        x -= w
        if x < 0:
            return v
    return pairs[-1][0]


def props_for(rnd, name, person):
    p = {}
    if rnd.random() < 0.85:
        p["city"] = person["city"] if rnd.random() < 0.9 else rnd.choice(CITIES)
    if rnd.random() < 0.5:
        p["vip"] = person["vip"]
    r = rnd.random()
    if r < 0.6:
        p["score"] = rnd.choice([0, 1, 2.5, 7, 10, -3, 0.1 + 0.2, 99.99])
    elif r < 0.7:
        p["score"] = None
    if rnd.random() < 0.35:
        p["ref"] = rnd.choice(REFS)
    if name == "$AppStart":
        p["channel"] = person["channel"] if rnd.random() < 0.8 else rnd.choice(CHANNELS)
        p["is_first"] = rnd.random() < 0.1
        if rnd.random() < 0.5:
            p["ver"] = rnd.choice(["5.2.0", "5.10.1", "6.0"])
    elif name == "ReadArticle":
        p["topic"] = rnd.choice(TOPICS)
        p["words"] = rnd.choice([300, 800, 1200, 2500, 4000])
        if rnd.random() < 0.7:
            p["article_id"] = rnd.randint(1, 40)
    elif name == "ViewFundDetail":
        p["fund_code"] = rnd.choice(FUNDS)
        p["risk"] = rnd.choice(RISKS)
        p["nav"] = round(rnd.uniform(0.8, 3.2), rnd.choice([2, 3, 4]))
        if rnd.random() < 0.6:
            p["tags"] = rnd.sample(TAGS, rnd.randint(0, 2))
    elif name == "CompareFunds":
        k = rnd.randint(2, 4)
        p["funds"] = rnd.sample(FUNDS, k)
        p["n"] = k
    elif name == "SubscribeFund":
        p["fund_code"] = rnd.choice(FUNDS)
        if rnd.random() < 0.9:
            p["amount"] = rnd.choice([100, 500, 1000, 2000, 5000, 10000, 1000.5, 0.01])
        p["pay"] = rnd.choice(["card", "balance", "alipay"])
        p["first_buy"] = rnd.random() < 0.3
        p["risk"] = rnd.choice(RISKS)
    elif name == "$MessageSent":
        if rnd.random() < 0.85:
            p["journey"] = rnd.choice(JOURNEYS)
        p["msg_channel"] = rnd.choice(["sms", "push", "wechat"])
    elif name.startswith("Tap_"):
        if rnd.random() < 0.5:
            p["tags"] = rnd.sample(TAGS, 1)
    return p


# the type of every property, registered first by the priming record
PRIME_PROPS = {"city": "x", "vip": True, "score": 1, "ref": "x", "channel": "x", "is_first": True,
               "ver": "x", "topic": "x", "words": 1, "article_id": 1, "fund_code": "x", "risk": "x",
               "nav": 1.5, "tags": ["x"], "funds": ["x"], "n": 1, "amount": 1, "pay": "x",
               "first_buy": True, "journey": "x", "msg_channel": "x", "gen_n": 0}


def session_start(rnd, day):
    """A session's first time on local day `day`: mostly daytime, often just
    before or at local midnight (day, week and month boundaries)."""
    r = rnd.random()
    if r < 0.06:
        return local_ms(day, DAY - rnd.choice([1, 1000, 60000, 300000]))
    if r < 0.10:
        return local_ms(day, rnd.choice([0, 1, 999]))
    if r < 0.22:
        return local_ms(day, DAY - rnd.randint(1, 40 * 60000))     # 23:20 .. 23:59:59.999
    hour = wpick(rnd, [(h, 3 if 8 <= h <= 22 else 0.5) for h in range(24)])
    return local_ms(day, hour * 3600000 + rnd.randint(0, 3599999))


def gap(rnd):
    r = rnd.random()
    if r < 0.05:
        return 0                      # equal timestamps
    if r < 0.08:
        return 1
    if r < 0.11:
        return 30 * 60000             # exactly the default session gap
    if r < 0.13:
        return 30 * 60000 + 1
    if r < 0.16:
        return 10 * 60000             # exactly a 10m gap
    if r < 0.22:
        return rnd.randint(31 * 60000, 5 * 3600000)
    return rnd.randint(1000, 8 * 60000)


class Gen:
    """The generated history and what Waymark must make of it."""

    def __init__(self, seed, persons=400):
        rnd = random.Random(seed)
        self.rnd = rnd
        self.persons = []
        self.events = []   # {"gen": n, "person": k, "time", "event", "props", "rec": record, "rejected"}
        for k in range(persons):
            kind = wpick(rnd, [("login", 48), ("anon", 20), ("signup", 8), ("envelope", 6),
                               ("idm3", 4), ("late_login", 4)])
            person = {"k": k, "kind": kind, "city": rnd.choice(CITIES[:11]) if rnd.random() < 0.9 else None,
                      "vip": rnd.random() < 0.3, "channel": rnd.choice(CHANNELS),
                      "login": "c%08d" % (10000000 + k * 7919 % 9000000) if kind != "anon" else None,
                      "anon": "a-%06x" % rnd.getrandbits(24) + "-%d" % k if kind != "login" else None}
            self.persons.append(person)
            self.gen_person(rnd, person)
        # Sensors records; the merge record of a merged visitor
        for e in self.events:
            e["rec"] = self.record(rnd, e)
        # a few records whose property type clashes with the registered one
        pool = [e for e in self.events if self.persons[e["person"]]["kind"] == "login"
                and e["id"] == "login" and e["event"] == "SubscribeFund"]
        for e in rnd.sample(pool, min(6, len(pool))):
            e["rec"]["properties"]["amount"] = str(int(e["props"].get("amount", 2000)))
            e["rejected"] = True
        self.order_file(rnd)

    def gen_person(self, rnd, person):
        nsess = min(NDAYS, max(1, int(rnd.expovariate(1 / 6.0)) + 1))
        days = sorted(rnd.sample(range(NDAYS), min(NDAYS, nsess)))
        starts = [(d, session_start(rnd, d)) for d in days]
        if person["k"] % 9 == 0:
            # the first or the last millisecond of a range the queries use:
            # October 1 and 31, Mondays 10-05, 10-12 and 10-26, 10-16
            d = [7, 11, 18, 22, 32, 38][person["k"] // 9 % 6]
            starts.append((d, local_ms(d, 0) - (person["k"] // 54 % 2)))
        evs = []
        for d, t in starts:
            name = "$AppStart" if rnd.random() < 0.8 else rnd.choice(["ReadArticle", "ViewFundDetail"])
            for _ in range(rnd.randint(2, 16)):
                evs.append([t, name])
                if rnd.random() < 0.12:     # a rare tap in between
                    t += gap(rnd)
                    evs.append([t, RARE[min(len(RARE) - 1, int(rnd.expovariate(1 / 6.0)))]])
                name = wpick(rnd, NEXT[name]) if name in NEXT else None
                if name is None:
                    break
                t += gap(rnd)
            if rnd.random() < 0.35:        # a message before the session (a touch)
                evs.append([session_start(rnd, d) - rnd.randint(0, 2 * DAY), "$MessageSent"])
            if rnd.random() < 0.05:        # a second session right after (30m gap boundary)
                evs.append([t + 30 * 60000, "$AppStart"])
        evs = [e for e in evs if local_ms(0, 0) - 3 * DAY <= e[0] < local_ms(NDAYS, 0)]
        evs.sort(key=lambda e: e[0])
        if not evs:
            evs = [[local_ms(rnd.randrange(NDAYS), 43200000), "$AppStart"]]
        # which identity each event carries
        kind = person["kind"]
        n = len(evs)
        ids = ["login" if kind in ("login",) else "anon"] * n
        merge_at = None
        if kind in ("signup", "envelope", "idm3", "late_login"):
            if n == 1:
                merge_at = 0
            else:
                merge_at = rnd.randint(1, n - 1) if kind != "late_login" else n - 1
            for j in range(n):
                ids[j] = "anon" if j < merge_at else ("merge" if j == merge_at else "login")
            if kind == "late_login":
                ids[merge_at] = "merge"   # the login comes last: no login user to merge into
        # Equal times only where Waymark stores both events under one user id
        # (their order is then the log's, i.e. the file's): not across
        # identities, nor between a merged visitor's anonymous events (those
        # before the merge record in the file keep the visitor's own id).
        merging = kind in ("signup", "envelope", "idm3")
        for j in range(1, n):
            if evs[j][0] <= evs[j - 1][0] and (ids[j] != ids[j - 1] or ids[j] == "merge"
                                               or merging and ids[j] == "anon"):
                evs[j][0] = evs[j - 1][0] + 1
            elif evs[j][0] < evs[j - 1][0]:
                evs[j][0] = evs[j - 1][0]
        for j, (t, name) in enumerate(evs):
            if ids[j] == "merge" and kind == "signup":
                name = "$SignUp"
            self.events.append({"gen": len(self.events) + 1, "person": person["k"], "time": t,
                                "event": name, "id": ids[j], "props": props_for(rnd, name, person),
                                "rejected": False})

    def record(self, rnd, e):
        person = self.persons[e["person"]]
        props = dict(e["props"])
        props["gen_n"] = e["gen"]
        rec = {"type": "track", "event": e["event"], "time": e["time"]}
        if e["id"] == "login":
            rec["distinct_id"] = person["login"]
            props["$is_login_id"] = True
        elif e["id"] == "anon":
            rec["distinct_id"] = person["anon"]
            if rnd.random() < 0.5:
                props["$is_login_id"] = False
        else:  # the record naming both ids
            kind = person["kind"]
            if kind == "signup":
                rec = {"type": "track_signup", "event": "$SignUp", "distinct_id": person["login"],
                       "original_id": person["anon"], "time": e["time"]}
            elif kind == "idm3":
                rec["identities"] = {"$identity_login_id": person["login"],
                                     "$identity_anonymous_id": person["anon"]}
                rec["distinct_id"] = person["login"]
            else:
                rec["distinct_id"] = person["login"]
                rec["anonymous_id"] = person["anon"]
                props["$is_login_id"] = True
        if rnd.random() < 0.3:
            rec["lib"] = {"$lib": "python", "$lib_version": "1.11.0", "$lib_method": "code"}
        rec["properties"] = props
        return rec

    def order_file(self, rnd):
        """File order: by time, then shuffled locally, 15% moved anywhere."""
        evs = sorted(self.events, key=lambda e: (e["time"], e["gen"]))
        keyed = []
        for j, e in enumerate(evs):
            if rnd.random() < 0.15:
                keyed.append((rnd.random() * len(evs), e))
            else:
                keyed.append((j + rnd.uniform(-40, 40), e))
        keyed.sort(key=lambda x: x[0])
        self.file = [e for _, e in keyed]
        for pos, e in enumerate(self.file):
            e["line"] = pos

    def chunks(self, n=CHUNKS):
        """The file in n consecutive pieces; the first n/2 are its first half."""
        b = [len(self.file) * j // n for j in range(n + 1)]
        return [self.file[b[j]:b[j + 1]] for j in range(n)]

    @staticmethod
    def prime_line():
        props = dict(PRIME_PROPS)
        props["$is_login_id"] = True
        return json.dumps({"type": "track", "event": "SchemaPrime", "distinct_id": PRIME_USER,
                           "time": local_ms(-260, 43200000), "properties": props})

    def kept(self):
        return [e for e in self.events if not e["rejected"]]

    def expected_export(self):
        """The export as the generator knows it: user = person + 1 (the priming
        user is 0), i = position in (time, file order)."""
        rows = [{"user": 0, "i": 0, "time": local_ms(-260, 43200000), "event": "SchemaPrime",
                 "properties": dict(PRIME_PROPS, **{"$is_login_id": True})}]
        by = {}
        for e in self.kept():
            by.setdefault(e["person"], []).append(e)
        for k in sorted(by):
            for i, e in enumerate(sorted(by[k], key=lambda e: (e["time"], e["line"]))):
                props = dict(e["rec"]["properties"])
                rows.append({"user": k + 1, "i": i, "time": e["time"], "event": e["event"],
                             "properties": props})
        return rows


# ---------------------------------------------------------------- queries

OCT = {"from": "2026-10-01", "to": "2026-10-31"}


def Q(name, kind, body, expect=None):
    q = {"kind": kind}
    q.update(OCT)
    q.update(body)
    if expect is None and kind == "events":
        expect = "values"
    return {"name": name, "q": q, "expect": expect}


FUNNEL3 = [{"event": "ViewFundDetail"}, {"event": "CompareFunds"}, {"event": "SubscribeFund"}]

QUERIES = [
    # --- events
    Q("ev-count-day", "events", {"series": [{"event": "$AppStart"}]}),
    Q("ev-users-week-prev", "events", {"series": [{"event": "ViewFundDetail", "measure": "users"}],
                                       "interval": "week", "compare": "previous"}),
    Q("ev-sum-month", "events", {"from": "2026-09-27", "to": "2026-11-03", "interval": "month",
                                 "compare": "previous",
                                 "series": [{"event": "SubscribeFund", "measure": "sum", "prop": "amount"}]}),
    Q("ev-avg-hour", "events", {"from": "2026-10-07", "to": "2026-10-08", "interval": "hour",
                                "series": [{"events": ["SubscribeFund", "ViewFundDetail"], "measure": "avg",
                                            "prop": "score"}], "compare": "previous"}),
    Q("ev-min-max-total", "events", {"interval": "total", "series": [
        {"event": "ViewFundDetail", "measure": "min", "prop": "nav"},
        {"event": "ViewFundDetail", "measure": "max", "prop": "nav"},
        {"event": "SubscribeFund", "measure": "max", "prop": "amount"}]}),
    Q("ev-distinct-day", "events", {"series": [{"event": "ViewFundDetail", "measure": "distinct",
                                                "prop": "fund_code"}]}),
    Q("ev-distinct-ref-total", "events", {"interval": "total", "compare": "previous", "series": [
        {"events": MAIN, "measure": "distinct", "prop": "ref"},
        {"events": MAIN, "measure": "sum", "prop": "ref"},
        {"events": MAIN, "measure": "avg", "prop": "ref"},
        {"events": MAIN, "measure": "distinct", "prop": "score"}]}),
    Q("ev-breakdown-city", "events", {"series": [{"event": "$AppStart"}], "breakdown": {"prop": "city"},
                                      "limit": 5}, "other"),
    Q("ev-breakdown-city-default-limit", "events", {"series": [{"events": MAIN, "measure": "users"},
                                                               {"events": MAIN, "measure": "distinct",
                                                                "prop": "fund_code"}],
                                                    "breakdown": {"prop": "city"}, "interval": "week"}, "other"),
    Q("ev-breakdown-channel-users-prev", "events", {"from": "2026-10-12", "to": "2026-10-25",
                                                    "series": [{"event": "$AppStart", "measure": "users"}],
                                                    "breakdown": {"prop": "channel"}, "limit": 3,
                                                    "compare": "previous", "interval": "week"}, "other"),
    Q("ev-breakdown-vip-avg", "events", {"series": [{"events": MAIN, "measure": "avg", "prop": "score"}],
                                         "breakdown": {"prop": "vip"}, "limit": 1, "interval": "week"}, "other"),
    Q("ev-multi-series-where", "events", {"series": [
        {"event": "$AppStart"}, {"event": "ReadArticle", "measure": "users",
                                 "where": {"prop": "topic", "op": "in", "value": ["ipo", "tax"]}},
        {"event": "ReadArticle", "measure": "sum", "prop": "words",
         "where": {"prop": "words", "op": ">", "value": "1000"}}]}),
    Q("ev-breakdown-tags-list", "events", {"series": [{"events": ["ViewFundDetail"] + RARE}],
                                           "breakdown": {"prop": "tags"}, "limit": 4,
                                           "interval": "total"}, "other"),
    Q("ev-breakdown-nav-float", "events", {"series": [{"event": "ViewFundDetail", "measure": "max",
                                                       "prop": "nav"}],
                                           "breakdown": {"prop": "nav"}, "limit": 6, "interval": "month"},
      "other"),
    Q("ev-breakdown-ref-sum", "events", {"series": [{"events": MAIN + RARE, "measure": "count"},
                                                    {"events": MAIN, "measure": "sum", "prop": "score"}],
                                         "breakdown": {"prop": "ref"}, "limit": 7, "interval": "total",
                                         "compare": "previous"}, "other"),
    Q("ev-where-in-prev", "events", {"series": [{"event": "ViewFundDetail"}], "compare": "previous",
                                     "from": "2026-10-16", "to": "2026-10-31",
                                     "where": {"prop": "fund_code", "op": "in", "value": ["000001", 110011, "5827"]}}),
    Q("ev-where-numeric-string", "events", {"interval": "week", "series": [
        {"event": "SubscribeFund", "measure": "count"}, {"event": "SubscribeFund", "measure": "users"}],
        "where": {"all": [{"prop": "amount", "op": ">=", "value": "1000"},
                          {"prop": "amount", "op": "between", "value": [1000, 5000]}]}}),
    Q("ev-where-set-contains", "events", {"series": [{"events": MAIN + RARE}], "interval": "total",
                                          "where": {"any": [
                                              {"all": [{"prop": "tags", "op": "contains", "value": "hot"},
                                                       {"prop": "score", "op": "not_set"}]},
                                              {"all": [{"prop": "city", "op": "is_set"},
                                                       {"prop": "city", "op": "!=", "value": "上海"},
                                                       {"prop": "ref", "op": "not_contains", "value": "0"}]}]}}),
    Q("ev-where-levels-dates", "events", {"series": [{"events": MAIN, "measure": "users"}, {"events": MAIN}],
                                          "interval": "week", "where": {"any": [
                                              {"prop": "risk", "op": "<", "value": "R3"},
                                              {"prop": "ref", "op": "between",
                                               "value": ["2026-10-01", "2026-10-31 23:59:59"]},
                                              {"not": {"prop": "vip", "op": "=", "value": False}}]}}),
    Q("ev-where-ref-prop", "events", {"series": [{"events": MAIN, "measure": "count"}], "interval": "total",
                                      "where": {"any": [{"prop": "ref", "op": "=", "value": 2000},
                                                        {"prop": "ref", "op": "<", "value": 3},
                                                        {"prop": "score", "op": ">=", "value": {"prop": "ref"}},
                                                        {"prop": "ref", "op": "not_in", "value": ["abc", "R3", ""]}]}}),
    Q("ev-utc0-day", "events", {"utc_offset_min": 0, "series": [{"event": "$AppStart"},
                                                                {"event": "$AppStart", "measure": "users"}]}),
    Q("ev-utc-minus-hour", "events", {"utc_offset_min": -300, "from": "2026-10-30", "to": "2026-11-02",
                                      "interval": "hour", "series": [{"events": MAIN + RARE}]}),
    # --- funnel
    Q("fu-seq-1d", "funnel", {"steps": FUNNEL3, "window": "1d"}, "dropoffs"),
    Q("fu-strict-7d", "funnel", {"steps": FUNNEL3, "order": "strict", "window": "7d", "dropped_at": 2},
      "dropoffs"),
    Q("fu-any-4", "funnel", {"steps": [{"event": "$AppStart"}, {"event": "SubscribeFund"},
                                       {"event": "CompareFunds"}, {"event": "ReadArticle"}],
                             "order": "any", "window": "2d"}, "dropoffs"),
    Q("fu-seq-30m-dropped", "funnel", {"steps": [{"event": "$AppStart"}, {"event": "ViewFundDetail"},
                                                 {"event": "SubscribeFund"}],
                                       "window": "30m", "dropped_at": 1}, "dropoffs"),
    Q("fu-step-where-breakdown", "funnel", {"steps": [
        {"event": "ViewFundDetail", "where": {"prop": "risk", "op": "<=", "value": "R3"}},
        {"event": "CompareFunds"},
        {"event": "SubscribeFund", "where": {"prop": "amount", "op": ">=", "value": 1000}}],
        "breakdown": {"prop": "city"}, "limit": 3, "dropped_at": 3}, "funnel_other"),
    Q("fu-events-names-where", "funnel", {"steps": [
        {"events": ["ReadArticle", "$MessageSent"], "name": "内容触达"},
        {"events": ["ViewFundDetail", "CompareFunds"]}, {"event": "SubscribeFund"}],
        "window": "3d", "where": {"prop": "city", "op": "is_set"}, "from": "2026-10-08", "to": "2026-10-20"},
      "dropoffs"),
    Q("fu-repeat-step", "funnel", {"steps": [{"event": "ViewFundDetail"}, {"event": "ViewFundDetail"},
                                             {"event": "ViewFundDetail"}, {"event": "SubscribeFund"}],
                                   "window": "1h"}, "dropoffs"),
    Q("fu-strict-where", "funnel", {"steps": [{"event": "$AppStart"}, {"event": "ViewFundDetail"},
                                              {"event": "CompareFunds"}],
                                    "order": "strict", "window": "1d",
                                    "where": {"not": {"prop": "score", "op": "is_set"}},
                                    "breakdown": {"prop": "channel"}, "limit": 4}, "funnel_other"),
    Q("fu-any-repeat", "funnel", {"steps": [{"event": "ViewFundDetail"}, {"event": "ViewFundDetail"},
                                            {"event": "CompareFunds"}],
                                  "order": "any", "window": "10m", "dropped_at": 2}, "dropoffs"),
    # --- retention
    Q("re-day-exact", "retention", {"start": {"event": "$AppStart"}, "return": {"event": "$AppStart"},
                                    "period": "day", "periods": 7}, "retained"),
    Q("re-week-unbounded", "retention", {"start": {"event": "ViewFundDetail"},
                                         "return": {"event": "SubscribeFund"},
                                         "period": "week", "periods": 4, "mode": "unbounded"}, "retained"),
    Q("re-month-exact", "retention", {"from": "2026-09-24", "to": "2026-10-31",
                                      "start": {"events": MAIN}, "return": {"events": MAIN},
                                      "period": "month", "periods": 2}, "retained"),
    Q("re-day-unbounded-breakdown", "retention", {
        "start": {"event": "$AppStart", "where": {"prop": "is_first", "op": "=", "value": False}},
        "return": {"events": ["ViewFundDetail", "SubscribeFund"]}, "period": "day", "periods": 10,
        "mode": "unbounded", "breakdown": {"prop": "channel"}, "limit": 3}, "retention_other"),
    Q("re-defaults", "retention", {"start": {"event": "SubscribeFund"}, "return": {"event": "ViewFundDetail"}},
      "retained"),
    Q("re-week-utc0", "retention", {"utc_offset_min": 0, "start": {"event": "ReadArticle"},
                                    "return": {"event": "ReadArticle"}, "period": "week", "periods": 3,
                                    "from": "2026-10-05", "to": "2026-10-25"}, "retained"),
    # --- paths
    Q("pa-start-session", "paths", {"start": {"event": "$AppStart"}, "depth": 4}, "paths"),
    Q("pa-end-user", "paths", {"end": {"event": "SubscribeFund"}, "depth": 5, "unit": "user"}, "paths"),
    Q("pa-start-user-nogap-complete", "paths", {"start": {"event": "ViewFundDetail"}, "unit": "user",
                                                "session_gap": "0", "complete_only": True, "depth": 3,
                                                "limit": 15}, "paths"),
    Q("pa-start-10m-other", "paths", {"start": {"events": ["ReadArticle", "$AppStart"]}, "session_gap": "10m",
                                      "depth": 6, "limit": 20}, "paths_other"),
    Q("pa-end-complete-where", "paths", {"end": {"event": "CompareFunds"}, "depth": 3, "complete_only": True,
                                         "where": {"prop": "city", "op": "not_in", "value": ["北京", "深圳"]}},
      "paths"),
    Q("pa-start-rare-other", "paths", {"start": {"events": RARE}, "depth": 3, "session_gap": "1h",
                                       "unit": "user", "limit": 30}, "paths_other"),
    # --- attribution
    Q("at-all-models", "attribution", {"conversion": {"event": "SubscribeFund"},
                                       "touches": [{"event": "$MessageSent", "label_prop": "journey"},
                                                   {"event": "ReadArticle"},
                                                   {"event": "ViewFundDetail",
                                                    "where": {"prop": "risk", "op": ">=", "value": "R4"}}],
                                       "lookback": "3d", "half_life": "12h"}, "attribution"),
    Q("at-value", "attribution", {"conversion": {"event": "SubscribeFund"},
                                  "touches": [{"event": "$MessageSent", "label_prop": "journey"},
                                              {"event": "ReadArticle", "label_prop": "topic"}],
                                  "models": ["first", "last", "linear"], "lookback": "7d",
                                  "value_prop": "amount"}, "attribution"),
    Q("at-self-touch-numlabel", "attribution", {"conversion": {"event": "SubscribeFund",
                                                               "where": {"prop": "first_buy", "op": "=",
                                                                         "value": False}},
                                                "touches": [{"event": "SubscribeFund", "label_prop": "amount"},
                                                            {"event": "ViewFundDetail", "label_prop": "nav"},
                                                            {"events": ["CompareFunds", "ViewFundDetail"]}],
                                                "models": ["position", "time_decay", "linear"],
                                                "lookback": "1h", "half_life": "10m",
                                                "from": "2026-10-10", "to": "2026-10-31"}, "attribution"),
    Q("at-where-ref-value", "attribution", {"conversion": {"events": ["SubscribeFund", "CompareFunds"]},
                                            "touches": [{"event": "$AppStart", "label_prop": "channel"},
                                                        {"event": "$MessageSent"}],
                                            "value_prop": "ref", "lookback": "1d",
                                            "where": {"prop": "vip", "op": "!=", "value": True}}, "attribution"),
    # --- distribution
    Q("di-view", "distribution", {"event": {"event": "ViewFundDetail"}}, "distribution"),
    Q("di-where", "distribution", {"event": {"events": MAIN, "where": {"prop": "score", "op": ">", "value": 1}},
                                   "from": "2026-10-01", "to": "2026-10-07",
                                   "where": {"prop": "city", "op": "contains", "value": "海"}}, "distribution"),
    # --- interval
    Q("in-view-subscribe", "interval", {"first": {"event": "ViewFundDetail"}, "then": {"event": "SubscribeFund"},
                                        "window": "30d"}, "interval"),
    Q("in-read-view-1h-where", "interval", {"first": {"event": "ReadArticle"},
                                            "then": {"event": "ViewFundDetail"}, "window": "1h",
                                            "where": {"prop": "ref", "op": "not_set"}}, "interval"),
    Q("in-message-start", "interval", {"first": {"event": "$MessageSent"}, "then": {"event": "$AppStart"},
                                       "window": "3d", "from": "2026-10-10", "to": "2026-11-03"}, "interval"),
    Q("in-same-spec", "interval", {"first": {"event": "$AppStart"}, "then": {"event": "$AppStart"}}),
    # --- map
    Q("ma-4-stages", "map", {"stages": [{"name": "搜索/点击资讯", "events": ["ReadArticle", "$MessageSent"]},
                                        {"name": "看基金", "events": ["ViewFundDetail"]},
                                        {"name": "对比", "events": ["CompareFunds"]},
                                        {"name": "申购", "events": ["SubscribeFund"]}],
                             "window": "30d"}, "map"),
    Q("ma-compare-7d", "map", {"stages": [{"name": "启动", "events": ["$AppStart"]},
                                          {"name": "看基金", "events": ["ViewFundDetail", "CompareFunds"]},
                                          {"name": "申购", "events": ["SubscribeFund"]}],
                               "window": "7d", "compare": "previous", "from": "2026-10-16", "to": "2026-10-31"},
      "map_moves"),
]


def nontrivial(expect, a):
    """Why the oracle's answer a does not exercise what the query is for, or None."""
    if expect is None:
        return None

    def groups_with_other(gs):
        return gs and gs[-1].get("group") == "$other"

    if expect == "values":
        # every series has a non-zero total (and so does its previous period)
        for t in a["totals"]:
            if not t["value"] or "previous" in t and not t["previous"]:
                return "series %d: total %s, previous %s" % (t["series"], t["value"], t.get("previous"))
        return None
    if expect == "other":
        if not any(r.get("group") == "$other" for r in a["totals"]):
            return "no $other group"
        if not any(r["value"] for r in a["rows"]):
            return "every value is zero"
        return None
    if expect in ("dropoffs", "funnel_other"):
        us = [s["users"] for s in a["steps"]]
        drops = sum(1 for x, y in zip(us, us[1:]) if y < x)
        if us[-1] == 0 or drops < 2 and len(us) > 2:
            return "steps %s: want drop-offs at two steps and users at the last" % us
        if "dropped" in a and not a["dropped"]:
            return "nobody dropped"
        if expect == "funnel_other" and not groups_with_other(a["groups"]):
            return "no $other group"
        return None
    if expect in ("retained", "retention_other"):
        t = a["total"]
        if t["users"] == 0 or sum(t["retained"]) == 0 or len(a["cohorts"]) < 2:
            return "total %s over %d cohorts" % (t, len(a["cohorts"]))
        if expect == "retention_other" and not groups_with_other(a["groups"]):
            return "no $other group"
        return None
    if expect in ("paths", "paths_other"):
        if len(a["paths"]) < 3 or not a["links"]:
            return "only %d paths" % len(a["paths"])
        if expect == "paths_other" and not any(n["name"] == "$other" for n in a["nodes"]):
            return "no $other node"
        return None
    if expect == "attribution":
        if a["conversions"] == 0 or a["unattributed"] == 0 or len(a["rows"]) < 3:
            return "conversions %d, unattributed %d, %d rows" % (a["conversions"], a["unattributed"],
                                                                 len(a["rows"]))
        return None
    if expect == "distribution":
        return None if len(a["rows"]) >= 3 else "rows %s" % a["rows"]
    if expect == "interval":
        return None if a["count"] >= 10 and sum(1 for h in a["histogram"] if h["count"]) >= 3 else \
            "count %d" % a["count"]
    if expect in ("map", "map_moves"):
        if any(s["users"] == 0 for s in a["stages"]) or not any(s["stalled"] for s in a["stages"][:-1]):
            return "stages %s" % [s["users"] for s in a["stages"]]
        if expect == "map_moves" and len(a.get("moves", [])) < 3:
            return "moves %s" % a.get("moves")
        return None
    return "unknown expectation %s" % expect


# ---------------------------------------------------------------- running things

NODE_DRIVER = r"""
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
// argv[1] is a placeholder (an existing path): oracle.mjs runs its own main when argv[1] names it
const [oracle, evPath, qPath] = process.argv.slice(2);
const { answer, readEvents } = await import(pathToFileURL(oracle).href);
const rows = readEvents(evPath);
const out = [];
for (const q of JSON.parse(readFileSync(qPath, "utf8"))) {
  try { out.push({ ok: await answer(rows, q) }); }
  catch (e) { out.push({ error: String(e && e.message || e) }); }
}
process.stdout.write(JSON.stringify(out) + "\n");
"""


def oracle_answers(events_path, queries, tmp):
    """[(answer or None, error or None)] per query, from one node process (and
    attribution.py for attribution)."""
    res = [None] * len(queries)
    js = [(j, q) for j, q in enumerate(queries) if q["kind"] != "attribution"]
    qpath = os.path.join(tmp, "oracle-queries.json")
    with open(qpath, "w", encoding="utf-8") as f:
        json.dump([q for _, q in js], f, ensure_ascii=False)
    p = subprocess.run(["node", "--input-type=module", "-e", NODE_DRIVER, ORACLE_DIR, os.path.join(ORACLE_DIR, "oracle.mjs"),
                        events_path, qpath], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("oracle failed: " + p.stderr[-3000:])
    for (j, _), r in zip(js, json.loads(p.stdout)):
        res[j] = (r.get("ok"), r.get("error"))
    for j, q in enumerate(queries):
        if q["kind"] == "attribution":
            qp = os.path.join(tmp, "oracle-q%d.json" % j)
            with open(qp, "w", encoding="utf-8") as f:
                json.dump(q, f, ensure_ascii=False)
            p = subprocess.run(["python3", os.path.join(ORACLE_DIR, "attribution.py"), events_path, qp],
                               capture_output=True, text=True, timeout=120)
            res[j] = (json.loads(p.stdout), None) if p.returncode == 0 else (None, p.stderr.strip())
    return res


def wm(args, timeout=120):
    try:
        p = subprocess.run([wmtest.BIN] + args, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, "", "%s: not found (build first)" % wmtest.BIN
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %d s" % timeout
    return p.returncode, p.stdout, p.stderr


SUMMARY = re.compile(r"(\d+) records imported, (\d+) duplicates skipped, (\d+) rejected")


def first_line(text, n=600):
    """The gist of a command's complaint (a usage text is cut to its first line)."""
    text = (text or "").strip()
    if "usage:" in text:
        text = text.split("usage:")[0].strip() or text.splitlines()[0]
    return text[-n:]


class Steps:
    """Outcomes of commands run on a worker thread, replayed into check() on
    the main thread (wmtest's counters are not thread-safe)."""

    def __init__(self):
        self.results = []

    def check(self, cond, what, detail=""):
        self.results.append((bool(cond), what, detail))
        return cond

    def replay(self):
        for cond, what, detail in self.results:
            check(cond, what, detail)
        return all(c for c, _, _ in self.results)


def wm_import(steps, data, path, want_imported, want_rejected, what):
    rc, out, err = wm(["import", "--quiet", "--data", data, path])
    ok = steps.check(rc == 0, "%s: waymark import %s exits 0" % (what, os.path.basename(path)),
                     "rc %d: %s" % (rc, first_line(err or out)))
    m = SUMMARY.search(out + err)
    if ok and m:
        got = (int(m.group(1)), int(m.group(3)))
        steps.check(got == (want_imported, want_rejected),
                    "%s: %s: %d imported, %d rejected (type clashes)" % (what, os.path.basename(path),
                                                                           want_imported, want_rejected),
                    "got %s; errors file: %s" % (got, read_head(path + ".errors")))
    return ok


def wm_compact(steps, data, what):
    rc, out, err = wm(["compact", "--data", data])
    return steps.check(rc == 0, "%s: waymark compact exits 0" % what, "rc %d: %s" % (rc, first_line(err or out)))


def read_head(path, n=2000):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(n)
    except OSError:
        return "(none)"


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def num_equal(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return False
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) or abs(a - b) <= 1e-12


def diff(got, want, path="$", out=None, names=("waymark", "oracle")):
    """The JSON paths where got differs from want, one line each."""
    out = [] if out is None else out
    g, w = names
    if is_num(got) and is_num(want):
        if not num_equal(got, want):
            out.append("%s: %s %r, %s %r" % (path, g, got, w, want))
    elif isinstance(got, dict) and isinstance(want, dict):
        for k in want:
            if k not in got:
                out.append("%s.%s: missing in %s's answer (%s %s)" % (path, k, g, w, short(want[k])))
            else:
                diff(got[k], want[k], "%s.%s" % (path, k), out, names)
        for k in got:
            if k not in want and not (k == "warnings" and got[k] == []):
                out.append("%s.%s: not in %s's answer (%s %s)" % (path, k, w, g, short(got[k])))
    elif isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            out.append("%s: %s has %d elements, %s %d" % (path, g, len(got), w, len(want)))
        for j in range(min(len(got), len(want))):
            diff(got[j], want[j], "%s[%d]" % (path, j), out, names)
    elif type(got) is not type(want) or got != want:
        out.append("%s: %s %s, %s %s" % (path, g, short(got), w, short(want)))
    return out


def short(v, n=200):
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[:n] + "..."


def dump(name, text):
    if ARGS.dump:
        path = os.path.join(ARGS.dump, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, indent=1) + "\n")


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_ndjson(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- the export against the generator

def check_export(gen, rows, layout):
    """The export against what the generator knows: every kept track event
    once, each person under one user id and no two persons under one, the
    generated times, names and properties, and the stream order."""
    kept = {e["gen"]: e for e in gen.kept()}
    want_n = len(kept) + 1  # + the priming record
    check(len(rows) == want_n, "%s: export has %d track events (%d generated lines, %d rejected, + priming)"
          % (layout, want_n, len(gen.events), len(gen.events) - len(kept)), "got %d" % len(rows))
    bad_shape = [r for r in rows if not (isinstance(r, dict) and isinstance(r.get("user"), int)
                                         and isinstance(r.get("i"), int) and isinstance(r.get("time"), int)
                                         and isinstance(r.get("event"), str))]
    check(not bad_shape, "%s: every export line has integer user, i, time and a string event" % layout,
          short(bad_shape[:3], 600))
    if bad_shape:
        return
    seen, user_of_person, person_of_user, wrong = set(), {}, {}, []
    prime_users = set()
    for r in rows:
        props = r.get("properties") or {}
        n = props.get("gen_n")
        if r["event"] == "SchemaPrime" and n == 0:
            prime_users.add(r["user"])
            continue
        e = kept.get(n)
        if e is None or n in seen:
            wrong.append("unknown or repeated gen_n %r: %s" % (n, short(r)))
            continue
        seen.add(n)
        if r["time"] != e["time"] or r["event"] != e["event"]:
            wrong.append("gen_n %d: time/event %s/%s, generated %s/%s" % (n, r["time"], r["event"], e["time"],
                                                                        e["event"]))
        want_props = {k: v for k, v in e["rec"]["properties"].items() if not k.startswith("$")}
        got_props = {k: v for k, v in props.items() if not k.startswith("$")}
        for k in set(want_props) | set(got_props):
            a, b = got_props.get(k), want_props.get(k)
            if not (a == b and type(a) is type(b) or is_num(a) and is_num(b) and a == b):
                wrong.append("gen_n %d: properties.%s: export %s, generated %s" % (n, k, short(a), short(b)))
        user_of_person.setdefault(e["person"], set()).add(r["user"])
        person_of_user.setdefault(r["user"], set()).add(e["person"])
    missing = sorted(set(kept) - seen)
    check(not missing, "%s: every kept generated event is in the export" % layout,
          "%d missing, first: %s" % (len(missing), [short(kept[n]["rec"]) for n in missing[:3]]))
    check(not wrong, "%s: times, names and properties as generated" % layout,
          "%d wrong, first:\n      " % len(wrong) + "\n      ".join(wrong[:10]))
    split = {p: u for p, u in user_of_person.items() if len(u) > 1}
    merged = {p for p in user_of_person if gen.persons[p]["kind"] in ("signup", "envelope", "idm3")}
    check(not split, "%s: each customer's events under one user id (%d visitors merged into a login user)"
          % (layout, len(merged)),
          "%d split, first: %s" % (len(split), [(gen.persons[p]["kind"], gen.persons[p]["anon"],
                                                 gen.persons[p]["login"], sorted(u))
                                                for p, u in list(split.items())[:5]]))
    joined = {u: p for u, p in person_of_user.items() if len(p) > 1}
    check(not joined and not (prime_users & set(person_of_user)) and len(prime_users) == 1,
          "%s: no two customers share a user id" % layout, short(list(joined.items())[:5]))
    # stream order: per user, i unique, times non-decreasing along i, equal
    # times in file order
    by = {}
    for r in rows:
        by.setdefault(r["user"], []).append(r)
    order_bad = []
    for u, rs in by.items():
        rs.sort(key=lambda r: r["i"])
        if len({r["i"] for r in rs}) != len(rs):
            order_bad.append("user %d: repeated i" % u)
            continue
        for a, b in zip(rs, rs[1:]):
            if b["time"] < a["time"]:
                order_bad.append("user %d: i %d at %d after i %d at %d" % (u, b["i"], b["time"], a["i"], a["time"]))
            elif b["time"] == a["time"]:
                ea, eb = kept.get(a["properties"].get("gen_n")), kept.get(b["properties"].get("gen_n"))
                if ea and eb and eb["line"] < ea["line"]:
                    order_bad.append("user %d: equal times out of file order (gen_n %d, %d)"
                                     % (u, ea["gen"], eb["gen"]))
    check(not order_bad, "%s: export stream order is (time, file order) per user" % layout,
          "%d faults, first: %s" % (len(order_bad), order_bad[:5]))


# ---------------------------------------------------------------- the test

GEN = Gen(ARGS.seed)
TMP = tempfile.mkdtemp(prefix="wm-oracle-diff-")
if ARGS.dump:
    os.makedirs(ARGS.dump, exist_ok=True)
QS = [x["q"] for x in QUERIES]


def check_oracle_answers(res, what):
    """Every query accepted by the oracle, and its answer non-trivial."""
    for x, (a, err) in zip(QUERIES, res):
        if check(err is None, "%s: oracle accepts %s" % (what, x["name"]), err):
            why = nontrivial(x["expect"], a)
            check(why is None, "%s: oracle's answer to %s is non-trivial" % (what, x["name"]), why)


def write_inputs():
    """The priming file and the chunks of the event file: [(path, imported, rejected)]."""
    prime = os.path.join(TMP, "prime.ndjson")
    write_lines(prime, [Gen.prime_line()])
    chunks = []
    for j, evs in enumerate(GEN.chunks()):
        path = os.path.join(TMP, "events-%02d.ndjson" % (j + 1))
        write_lines(path, [json.dumps(e["rec"], ensure_ascii=False) for e in evs])
        rej = sum(e["rejected"] for e in evs)
        chunks.append((path, len(evs) - rej, rej))
    dump("input/prime.ndjson", read_head(prime, 1 << 20))
    dump("input/events.ndjson", "".join(read_head(c[0], 1 << 30) for c in chunks))
    dump("queries.json", [{"name": x["name"], "query": x["q"]} for x in QUERIES])
    return prime, chunks


def test_oracle_only():
    rows = GEN.expected_export()
    path = os.path.join(TMP, "expected.ndjson")
    write_ndjson(path, rows)
    dump("expected-export.ndjson", read_head(path, 1 << 30))
    print("generated %d events (%d rejected), %d customers, %d queries" %
          (len(GEN.events), len(GEN.events) - len(GEN.kept()), len(GEN.persons), len(QS)), flush=True)
    res = oracle_answers(path, QS, TMP)
    check_oracle_answers(res, "expected export")
    for x, (a, err) in zip(QUERIES, res):
        dump("answers/expected/%s.oracle.json" % x["name"], a if err is None else {"error": err})


def build_layouts(prime, chunks):
    """The three data directories: tail (import), parts (a copy of tail,
    compacted) and split (first half, compact, second half). Imports stall
    on merges across partitions, so tail and split are built at the same time."""
    dirs = {k: os.path.join(TMP, "data-" + k) for k in ("tail", "parts", "split")}
    steps = {k: Steps() for k in dirs}
    ready = {}

    def imports(k, pieces):
        return all(wm_import(steps[k], dirs[k], path, n, rej, k) for path, n, rej in pieces)

    def tail():
        ready["tail"] = imports("tail", [(prime, 1, 0)] + chunks)
        if ready["tail"]:
            shutil.copytree(dirs["tail"], dirs["parts"])
            ready["parts"] = wm_compact(steps["parts"], dirs["parts"], "parts")

    def split():
        half = len(chunks) // 2
        ready["split"] = (imports("split", [(prime, 1, 0)] + chunks[:half])
                          and wm_compact(steps["split"], dirs["split"], "split")
                          and imports("split", chunks[half:]))

    threads = [threading.Thread(target=f) for f in (tail, split)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in dirs:
        steps[k].replay()
    # the premise of each layout: where its events are (the import itself
    # must not compact, or no layout reads the log tail)
    total = len(GEN.kept()) + 1
    for k, want in (("tail", "none"), ("parts", "all"), ("split", "some")):
        if ready.get(k):
            rows = part_rows(dirs[k])
            ok = {"none": rows == 0, "all": rows == total, "some": 0 < rows < total}[want]
            check(ok, "%s: %s of the %d events in column parts" % (k, want, total),
                  "%d rows in the parts of %s/analytics/*/MANIFEST" % (rows, dirs[k]))
    return {k: d for k, d in dirs.items() if ready.get(k)}


def part_rows(data):
    """Rows in the parts the manifests list ("part FILE ROWS ..." lines)."""
    n = 0
    for root, _, files in os.walk(os.path.join(data, "analytics")):
        if "MANIFEST" in files:
            with open(os.path.join(root, "MANIFEST"), encoding="utf-8", errors="replace") as f:
                for line in f:
                    w = line.split()
                    if len(w) >= 3 and w[0] == "part" and w[2].isdigit():
                        n += int(w[2])
    return n


def export_layout(layout, data):
    """`waymark query export`, checked against the generator: (rows, path) or None."""
    rc, out, err = wm(["query", "export", "--data", data])
    if not check(rc == 0, "%s: waymark query export exits 0" % layout, "rc %d: %s" % (rc, first_line(err or out))):
        return None
    rows, bad = [], []
    for ln, line in enumerate(out.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                bad.append("line %d: %s" % (ln, e))
    check(not bad, "%s: export is NDJSON" % layout, bad[:3])
    path = os.path.join(TMP, "export-%s.ndjson" % layout)
    with open(path, "w", encoding="utf-8") as f:
        f.write(out)
    dump("export-%s.ndjson" % layout, out)
    check_export(GEN, rows, layout)
    return rows, path


def wm_answers(layout, data, steps):
    """{query name: answer} from `waymark query KIND FILE --format json`; a
    failing query is reported (into steps) and has no answer."""
    answers = {}
    for x in QUERIES:
        qpath = os.path.join(TMP, "q-%s-%s.json" % (layout, x["name"]))
        with open(qpath, "w", encoding="utf-8") as f:
            json.dump(x["q"], f, ensure_ascii=False)
        rc, out, err = wm(["query", x["q"]["kind"], qpath, "--data", data, "--format", "json"])
        if rc == 0:
            try:
                answers[x["name"]] = json.loads(out)
            except ValueError as e:
                rc, err = -1, "not JSON: %s: %s" % (e, out[:300])
        dump("answers/%s/%s.waymark.json" % (layout, x["name"]),
             answers[x["name"]] if rc == 0 else {"rc": rc, "stderr": err})
        if rc != 0:
            steps.check(False, "%s: %s: waymark query %s exits 0" % (layout, x["name"], x["q"]["kind"]),
                        "rc %d: %s\n      query: %s" % (rc, first_line(err or out), short(x["q"], 400)))
            if "unknown command" in err:
                steps.check(False, "%s: the other queries are run" % layout, "waymark has no query command")
                break
    return answers


def compare_layout(layout, answers, res):
    mismatched = 0
    for x, (want, oerr) in zip(QUERIES, res):
        dump("answers/%s/%s.oracle.json" % (layout, x["name"]), want if oerr is None else {"error": oerr})
        got = answers.get(x["name"])
        if got is None or oerr is not None:
            mismatched += got is None
            continue
        d = diff(got, want)
        mismatched += bool(d)
        check(not d, "%s: %s equals the oracle" % (layout, x["name"]),
              "query: %s\n      " % short(x["q"], 600) + "\n      ".join(d))
    print("%s: %d of %d queries differ from the oracle or failed" % (layout, mismatched, len(QUERIES)),
          flush=True)


def test_layouts():
    prime, chunks = write_inputs()
    t = time.time()
    built = build_layouts(prime, chunks)
    print("imports and compactions: %.1f s" % (time.time() - t), flush=True)
    exports = {k: export_layout(k, d) for k, d in built.items()}
    # the oracle (once per distinct export) runs while waymark answers
    keys, jobs = {}, []
    for layout, ex in exports.items():
        if ex is not None:
            canon = sorted(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in ex[0])
            key = hashlib.sha256("\n".join(canon).encode()).hexdigest()
            if key not in keys.values():
                jobs.append((key, ex[1]))
            keys[layout] = key
    oracle, failures = {}, []

    def run_oracle():
        for key, path in jobs:
            try:
                oracle[key] = oracle_answers(path, QS, TMP)
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(str(e))

    # waymark's queries mostly wait (opening a data directory): the layouts
    # run side by side, next to the oracle
    answers, steps = {}, {k: Steps() for k in built}

    def run_wm(k):
        answers[k] = wm_answers(k, built[k], steps[k])

    threads = [threading.Thread(target=run_oracle)] + [threading.Thread(target=run_wm, args=(k,)) for k in built]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in built:
        steps[k].replay()
    check(not failures, "the oracle runs", "\n".join(failures)[-3000:])
    for j, (key, _) in enumerate(jobs):
        if key in oracle:
            check_oracle_answers(oracle[key], "export %d" % (j + 1))
    for layout in ("tail", "parts", "split"):
        if keys.get(layout) in oracle:
            compare_layout(layout, answers[layout], oracle[keys[layout]])
    base = answers.get("tail")
    for layout in ("parts", "split"):
        other = answers.get(layout)
        if base is None or other is None:
            check(False, "%s: answers to compare with the tail's" % layout, "a layout was not built")
            continue
        for x in QUERIES:
            a, b = other.get(x["name"]), base.get(x["name"])
            if a is not None and b is not None:
                d = diff(a, b, names=(layout, "tail"))
                check(not d, "%s: %s equals the answer from the log tail" % (layout, x["name"]),
                      "\n      ".join(d))


t0 = time.time()
if ARGS.oracle_only:
    run_case(test_oracle_only)
else:
    if not os.path.isdir(os.path.join(ORACLE_DIR, "node_modules", "@duckdb", "node-api")):
        check(False, "tests/oracle/node_modules is installed", "run scripts/bootstrap")
    else:
        run_case(test_layouts)
print("%.1f s" % (time.time() - t0))
shutil.rmtree(TMP, ignore_errors=True)
finish()
