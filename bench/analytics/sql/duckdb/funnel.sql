-- funnel: $AppStart -> ViewFundDetail -> CompareFunds -> SubscribeFund, 7 days (604800 s)
-- From every step-1 event, ASOF joins find the earliest next step strictly later (by ms);
-- a step counts while its whole second minus step 1's whole second <= 604800 (ClickHouse's
-- windowFunnel on whole seconds); chains that miss a step stop there (inner joins).
-- out: users with level >= 1..4
WITH s1 AS (SELECT user, time_ms AS t FROM ev WHERE event = '$AppStart'),
s2 AS (SELECT user, time_ms AS t FROM ev WHERE event = 'ViewFundDetail'),
s3 AS (SELECT user, time_ms AS t FROM ev WHERE event = 'CompareFunds'),
s4 AS (SELECT user, time_ms AS t FROM ev WHERE event = 'SubscribeFund'),
c2 AS (SELECT s1.user, s1.t AS t1, s2.t AS t2 FROM s1 ASOF JOIN s2 ON s1.user = s2.user AND s2.t > s1.t
       WHERE s2.t // 1000 - s1.t // 1000 <= 604800),
c3 AS (SELECT c2.user, c2.t1, s3.t AS t3 FROM c2 ASOF JOIN s3 ON c2.user = s3.user AND s3.t > c2.t2
       WHERE s3.t // 1000 - c2.t1 // 1000 <= 604800),
c4 AS (SELECT c3.user FROM c3 ASOF JOIN s4 ON c3.user = s4.user AND s4.t > c3.t3
       WHERE s4.t // 1000 - c3.t1 // 1000 <= 604800)
SELECT (SELECT count(DISTINCT user) FROM s1), (SELECT count(DISTINCT user) FROM c2),
       (SELECT count(DISTINCT user) FROM c3), (SELECT count(DISTINCT user) FROM c4)
