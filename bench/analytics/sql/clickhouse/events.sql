-- events per local day (UTC+8, integer arithmetic): day number, count
SELECT intDiv(time_ms + 28800000, 86400000) AS d, count() FROM ev GROUP BY d ORDER BY d
