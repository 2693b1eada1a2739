-- paths: per user all events by (time, name); the first $AppStart and the next 3 events
-- (users with fewer not counted); top 10 by users, ties by path. Only users with an $AppStart
-- are gathered (IN), each user's events sorted by (time_ms, event) in an array
SELECT arrayStringConcat(arraySlice(names, i, 4), ' > ') AS path, count() AS users
FROM (
    SELECT arrayMap(x -> x.2, arraySort(groupArray((time_ms, event)))) AS names,
        indexOf(names, '$AppStart') AS i
    FROM ev
    WHERE user IN (SELECT user FROM ev PREWHERE event = '$AppStart')
    GROUP BY user
    HAVING i > 0 AND length(names) >= i + 3
)
GROUP BY path ORDER BY users DESC, path LIMIT 10
