-- paths: per user all events by (time, name); the first $AppStart and the next 3 events
-- (users with fewer not counted); top 10 by users, ties by path
WITH f AS (SELECT user, min(time_ms) AS t0 FROM ev WHERE event = '$AppStart' GROUP BY user),
n AS (
    SELECT ev.user, ev.time_ms, ev.event FROM ev JOIN f ON ev.user = f.user
    WHERE ev.time_ms > f.t0 OR (ev.time_ms = f.t0 AND ev.event >= '$AppStart')
    QUALIFY row_number() OVER (PARTITION BY ev.user ORDER BY ev.time_ms, ev.event) <= 4),
p AS (SELECT user, string_agg(event, ' > ' ORDER BY time_ms, event) AS path, count(*) AS k FROM n GROUP BY user)
SELECT path, count(*) AS users FROM p WHERE k = 4 GROUP BY path ORDER BY users DESC, path LIMIT 10
