-- paths: per user all events by (time, name); the first $AppStart and the next 3 events
-- (users with fewer not counted); top 10 by users, ties by path
SELECT arrayStringConcat(arraySlice(names, i, 4), ' > ') AS path, count() AS users
FROM (
    SELECT arrayMap(x -> x.2, arraySort(groupArray((time_ms, event)))) AS names,
        indexOf(names, '$AppStart') AS i
    FROM ev
    GROUP BY user
    HAVING i > 0 AND length(names) >= i + 3
)
GROUP BY path
ORDER BY users DESC, path
LIMIT 10
