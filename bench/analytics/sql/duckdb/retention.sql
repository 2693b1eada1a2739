-- retention: start $AppStart, return $AppStart, day cohorts (UTC+8), exact days 1..7
-- per user: first day d0 and a bit mask of the days d0+1..d0+7 with the event
WITH a AS (SELECT user, (time_ms + 28800000) // 86400000 AS d FROM ev WHERE event = '$AppStart'),
u AS (SELECT user, min(d) AS d0, list(DISTINCT d) AS days FROM a GROUP BY user),
m AS (SELECT d0,
        list_reduce(list_transform(days, x -> CASE WHEN x - d0 BETWEEN 1 AND 7 THEN (1 << (x - d0))::INTEGER ELSE 0 END), (p, q) -> p | q) AS mask
      FROM u)
SELECT d0, count(*),
       count(*) FILTER (mask & 2 <> 0), count(*) FILTER (mask & 4 <> 0), count(*) FILTER (mask & 8 <> 0),
       count(*) FILTER (mask & 16 <> 0), count(*) FILTER (mask & 32 <> 0), count(*) FILTER (mask & 64 <> 0),
       count(*) FILTER (mask & 128 <> 0)
FROM m GROUP BY d0 ORDER BY d0
