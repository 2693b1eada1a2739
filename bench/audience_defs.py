#!/usr/bin/env python3
"""Publishes a realistic set of tags and segments to a running waymark for
the audience benchmarks (bench/run-all, section "audience").

  audience_defs.py URL ADMIN_KEY upkeep [N_SEGMENTS N_TAGS]   (default 200 50)
  audience_defs.py URL ADMIN_KEY preview

upkeep: N_TAGS tags (tier-like rule tags over aum / risk, behaviour metrics
over the brokerage events of `waymark gen`, first / last / preference tags)
and N_SEGMENTS segments (did-clauses over those events with several windows
and thresholds, profile + behaviour combinations, tag conditions, unions and
intersections), spread over the event names the generator writes, as an
operations team would have them. The mix is deterministic.

preview: the tier tag, the 30-day Login counter kept by a published segment,
"known" (risk level set), "any_tier" (every customer: the tier has a
default) and "active_30d" (app, H5, fund or news activity in 30 days), for
the 3-clause preview and set algebra figures.

Waits until every definition is computed, then prints how many it published.
"""
import json
import sys
import time
import urllib.request

EVENTS = ["ViewFundDetail", "BrowseNews", "ReadArticle", "$AppStart", "$pageview", "Login", "CompareFunds",
          "TransferIn", "SubscribeFund", "StartSIP", "IPOSubscribe", "SellFund"]
WINDOWS = ["7d", "14d", "30d", "90d"]


def api(url, key, method, path, body=None):
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def publish(url, key, kind, d):
    api(url, key, "POST", f"/api/v1/{kind}", d)
    api(url, key, "POST", f"/api/v1/{kind}/{d['key']}/publish")


def tier_tag():
    return {"key": "tier", "name": "客户分层", "kind": "rule",
            "layers": [{"value": "高净值", "if": {"profile": "aum", "op": ">=", "value": 1000000}},
                       {"value": "大众富裕", "if": {"profile": "aum", "op": ">=", "value": 200000}}],
            "default": "长尾"}


def upkeep_defs(n_segs, n_tags):
    tags = [tier_tag()]
    i = 0
    while len(tags) < n_tags:
        ev = EVENTS[i % len(EVENTS)]
        kind = i % 10
        k = f"t{i:03d}"
        if kind < 5:
            tags.append({"key": k, "kind": "metric", "event": ev, "agg": "count", "within": WINDOWS[i % 4]})
        elif kind == 5:
            tags.append({"key": k, "kind": "metric", "event": "SubscribeFund", "agg": "sum", "field": "amount",
                         "within": "90d", "buckets": [{"name": "low", "lt": 10000}, {"name": "mid", "lt": 100000},
                                                      {"name": "high"}]})
        elif kind == 6:
            tags.append({"key": k, "kind": "last", "event": "ViewFundDetail", "field": "fund_code"})
        elif kind == 7:
            tags.append({"key": k, "kind": "first", "event": ev, "field": "$lib"})
        elif kind == 8:
            tags.append({"key": k, "kind": "preference", "event": "ViewFundDetail", "field": "fund_type",
                         "within": "30d"})
        else:
            tags.append({"key": k, "kind": "rule", "layers": [
                {"value": "活跃", "if": {"did": ev, "count": {">=": 3}, "within": "7d"}},
                {"value": "一般", "if": {"did": ev, "count": {">=": 1}, "within": "30d"}}], "default": "沉默"})
        i += 1
    segs = []
    i = 0
    while len(segs) < n_segs:
        ev = EVENTS[i % len(EVENTS)]
        kind = i % 10
        k = f"s{i:03d}"
        if kind < 5:
            cond = {"did": ev, "count": {">=": 1 + i % 5}, "within": WINDOWS[i % 4]}
        elif kind < 7:
            cond = {"all": [{"profile": "risk_level", "op": ">=", "value": f"C{1 + i % 5}"},
                            {"did": ev, "count": {">=": 2}, "within": "30d"}]}
        elif kind < 9:
            cond = {"all": [{"tag": "tier", "op": "=", "value": ["高净值", "大众富裕", "长尾"][i % 3]},
                            {"tag": tags[1 + i % (len(tags) - 1)]["key"] if len(tags) > 1 else "tier", "op": "is_set"}]}
        else:
            cond = None
        if cond is None and len(segs) >= 2:
            segs.append({"key": k, "kind": "union" if i % 20 == 9 else "intersect",
                         "of": [segs[-1]["key"], segs[-2]["key"]]})
        else:
            segs.append({"key": k, "condition": cond or {"did": ev, "count": {">=": 1}, "within": "7d"}})
        i += 1
    return tags, segs


def preview_defs():
    active = {"any": [{"did": ev, "count": {">=": 1}, "within": "30d"}
                      for ev in ("$AppStart", "$pageview", "ViewFundDetail", "BrowseNews", "ReadArticle")]}
    return [tier_tag()], [{"key": "login_30d", "condition": {"did": "Login", "count": {">=": 1}, "within": "30d"}},
                          {"key": "known", "condition": {"profile": "risk_level", "op": "is_set"}},
                          {"key": "any_tier", "condition": {"tag": "tier", "op": "is_set"}},
                          {"key": "active_30d", "condition": active}]


def main():
    url, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "upkeep":
        n_segs = int(sys.argv[4]) if len(sys.argv) > 4 else 200
        n_tags = int(sys.argv[5]) if len(sys.argv) > 5 else 50
        tags, segs = upkeep_defs(n_segs, n_tags)
    else:
        tags, segs = preview_defs()
    for t in tags:
        publish(url, key, "tags", t)
    for s in segs:
        publish(url, key, "segments", s)
    deadline = time.time() + 600
    for kind, defs in (("tags", tags), ("segments", segs)):
        for d in defs:
            while not api(url, key, "GET", f"/api/v1/{kind}/{d['key']}").get("computed"):
                if time.time() > deadline:
                    sys.exit("audience_defs: not computed in time: " + d["key"])
                time.sleep(0.05)
    print(f"published {len(tags)} tags, {len(segs)} segments")


if __name__ == "__main__":
    main()
