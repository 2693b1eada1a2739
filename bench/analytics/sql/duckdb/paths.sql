-- paths: per user all events by (time, name); the first $AppStart and the next 3 events
-- (users with fewer not counted); top 10 by users, ties by path. The 3 events after the first
-- $AppStart are the 3 smallest (time_ms, event) past it: min_by(..., 3), a top-3 per user in
-- the hash aggregate, no sort or window over all rows
WITH f AS (SELECT user, min(time_ms) AS t0 FROM ev WHERE event = '$AppStart' GROUP BY user),
n AS (SELECT ev.user, min_by(ev.event, (ev.time_ms, ev.event), 3) AS nx
      FROM ev JOIN f ON ev.user = f.user
      WHERE ev.time_ms > f.t0 OR (ev.time_ms = f.t0 AND ev.event > '$AppStart')
      GROUP BY ev.user HAVING count(*) >= 3)
SELECT '$AppStart > ' || array_to_string(nx, ' > ') AS path, count(*) AS users FROM n GROUP BY path ORDER BY users DESC, path LIMIT 10
