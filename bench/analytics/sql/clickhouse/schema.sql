CREATE TABLE ev (
    user UInt32,
    event String,
    time_ms Int64,
    channel String,
    fund_code String
) ENGINE = MergeTree ORDER BY (user, time_ms)
