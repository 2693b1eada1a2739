-- retention: start $AppStart, return $AppStart, day cohorts (UTC+8), exact days 1..7
-- out: cohort day, users, retained on day d0+1..d0+7
SELECT d0, count(), sum(r[2]), sum(r[3]), sum(r[4]), sum(r[5]), sum(r[6]), sum(r[7]), sum(r[8])
FROM (
    SELECT user, min(d) AS d0,
        arrayMap(k -> toUInt8(has(days, d0 + k - 1)), range(9)) AS r0,
        arrayPopFront(r0) AS r,
        groupUniqArray(d) AS days
    FROM (SELECT user, intDiv(time_ms + 28800000, 86400000) AS d FROM ev PREWHERE event = '$AppStart')
    GROUP BY user
)
GROUP BY d0
ORDER BY d0
