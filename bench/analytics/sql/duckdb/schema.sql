CREATE TABLE ev (user UINTEGER, event VARCHAR, time_ms BIGINT, channel VARCHAR, fund_code VARCHAR);
