-- funnel: $AppStart -> ViewFundDetail -> CompareFunds -> SubscribeFund, 7 days (604800 s)
-- windowFunnel default mode on whole seconds; out: users with level >= 1..4
SELECT countIf(level >= 1), countIf(level >= 2), countIf(level >= 3), countIf(level >= 4)
FROM (
    SELECT user, windowFunnel(604800)(toUInt32(intDiv(time_ms, 1000)),
        event = '$AppStart', event = 'ViewFundDetail', event = 'CompareFunds', event = 'SubscribeFund') AS level
    FROM ev
    PREWHERE event IN ('$AppStart', 'ViewFundDetail', 'CompareFunds', 'SubscribeFund')
    GROUP BY user
)
