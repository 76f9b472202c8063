-- Live KPIs: transactions, satisfaction ratings, availability probes and costs. One dialect:
-- ClickHouse 18.16 and 26.x.
--
-- Transactions and ratings are counted, so a duplicate must never reach a sum. The processor
-- looks each batch's (service, id, minute) up in the events table and inserts only the new
-- events, into a Null table whose views fan the one insert out to the events table and to the
-- minute, hour and day sums. A replayed Kafka message (a worker killed before it committed) or
-- a client's retry (same id, same timestamp) finds its events already there and adds nothing.
-- Sums are SummingMergeTree, read with sum() ... GROUP BY, exact before and after merges.
-- (18.16's views do not convert String to LowCardinality, so the Null tables declare the
-- LowCardinality columns their targets have.)
--
-- Probes and costs are few: kept as rows (ReplacingMergeTree on their identity) and
-- aggregated at read time, deduplicated by their key.

CREATE TABLE IF NOT EXISTS {db}.tx_in (
    service LowCardinality(String),
    id String,
    txn String,
    outcome LowCardinality(String),
    channel LowCardinality(String),
    cost_e4 Int64,
    ts DateTime('UTC'),
    ttc_ms Int64,
    ttc_edge_ms Int64,
    received DateTime('UTC')
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS {db}.tx_events (
    service LowCardinality(String),
    id String,
    txn String,
    outcome LowCardinality(String),
    channel LowCardinality(String),
    cost_e4 Int64,
    ts DateTime('UTC'),
    ttc_ms Int64,
    ttc_edge_ms Int64,
    received DateTime('UTC')
) ENGINE = ReplacingMergeTree(received) PARTITION BY toYYYYMM(ts) ORDER BY (service, ts, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tx_events_mv TO {db}.tx_events AS
SELECT service, id, txn, outcome, channel, cost_e4, ts, ttc_ms, ttc_edge_ms, received FROM {db}.tx_in;

-- cost_e4 < 0 means the event carried no cost; ttc_ms < 0: no time to complete (not a
-- completion, or no start time). ttc_edge_ms: upper edge of its time-to-complete histogram
-- bucket (pipeline.kpi.HISTOGRAM_EDGES_MS), -1 for none.
CREATE TABLE IF NOT EXISTS {db}.tx_minute (
    service LowCardinality(String),
    t DateTime('UTC'),
    channel LowCardinality(String),
    outcome LowCardinality(String),
    ttc_edge_ms Int64,
    events UInt64,
    cost_sum_e4 Int64,
    costed UInt64,
    ttc_n UInt64,
    ttc_sum_ms Int64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMM(t) ORDER BY (service, t, channel, outcome, ttc_edge_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tx_minute_mv TO {db}.tx_minute AS
SELECT service, toStartOfMinute(ts) AS t, channel, outcome, ttc_edge_ms, count() AS events,
       sumIf(cost_e4, cost_e4 >= 0) AS cost_sum_e4, countIf(cost_e4 >= 0) AS costed,
       countIf(ttc_ms >= 0) AS ttc_n, sumIf(ttc_ms, ttc_ms >= 0) AS ttc_sum_ms
FROM {db}.tx_in GROUP BY service, t, channel, outcome, ttc_edge_ms;

CREATE TABLE IF NOT EXISTS {db}.tx_hour (
    service LowCardinality(String),
    t DateTime('UTC'),
    channel LowCardinality(String),
    outcome LowCardinality(String),
    ttc_edge_ms Int64,
    events UInt64,
    cost_sum_e4 Int64,
    costed UInt64,
    ttc_n UInt64,
    ttc_sum_ms Int64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, channel, outcome, ttc_edge_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tx_hour_mv TO {db}.tx_hour AS
SELECT service, toStartOfHour(ts) AS t, channel, outcome, ttc_edge_ms, count() AS events,
       sumIf(cost_e4, cost_e4 >= 0) AS cost_sum_e4, countIf(cost_e4 >= 0) AS costed,
       countIf(ttc_ms >= 0) AS ttc_n, sumIf(ttc_ms, ttc_ms >= 0) AS ttc_sum_ms
FROM {db}.tx_in GROUP BY service, t, channel, outcome, ttc_edge_ms;

CREATE TABLE IF NOT EXISTS {db}.tx_day (
    service LowCardinality(String),
    t DateTime('UTC'),
    channel LowCardinality(String),
    outcome LowCardinality(String),
    ttc_edge_ms Int64,
    events UInt64,
    cost_sum_e4 Int64,
    costed UInt64,
    ttc_n UInt64,
    ttc_sum_ms Int64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, channel, outcome, ttc_edge_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tx_day_mv TO {db}.tx_day AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, channel, outcome, ttc_edge_ms, count() AS events,
       sumIf(cost_e4, cost_e4 >= 0) AS cost_sum_e4, countIf(cost_e4 >= 0) AS costed,
       countIf(ttc_ms >= 0) AS ttc_n, sumIf(ttc_ms, ttc_ms >= 0) AS ttc_sum_ms
FROM {db}.tx_in GROUP BY service, t, channel, outcome, ttc_edge_ms;

-- Satisfaction ratings (1-5). The comment is kept for the service team; it is never logged.
CREATE TABLE IF NOT EXISTS {db}.rating_in (
    service LowCardinality(String),
    id String,
    rating UInt8,
    comment String,
    ts DateTime('UTC'),
    received DateTime('UTC')
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS {db}.rating_events (
    service LowCardinality(String),
    id String,
    rating UInt8,
    comment String,
    ts DateTime('UTC'),
    received DateTime('UTC')
) ENGINE = ReplacingMergeTree(received) PARTITION BY toYYYYMM(ts) ORDER BY (service, ts, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.rating_events_mv TO {db}.rating_events AS
SELECT service, id, rating, comment, ts, received FROM {db}.rating_in;

CREATE TABLE IF NOT EXISTS {db}.rating_minute (
    service LowCardinality(String),
    t DateTime('UTC'),
    rating UInt8,
    responses UInt64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMM(t) ORDER BY (service, t, rating);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.rating_minute_mv TO {db}.rating_minute AS
SELECT service, toStartOfMinute(ts) AS t, rating, count() AS responses
FROM {db}.rating_in GROUP BY service, t, rating;

CREATE TABLE IF NOT EXISTS {db}.rating_hour (
    service LowCardinality(String),
    t DateTime('UTC'),
    rating UInt8,
    responses UInt64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, rating);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.rating_hour_mv TO {db}.rating_hour AS
SELECT service, toStartOfHour(ts) AS t, rating, count() AS responses
FROM {db}.rating_in GROUP BY service, t, rating;

CREATE TABLE IF NOT EXISTS {db}.rating_day (
    service LowCardinality(String),
    t DateTime('UTC'),
    rating UInt8,
    responses UInt64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, rating);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.rating_day_mv TO {db}.rating_day AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, rating, count() AS responses
FROM {db}.rating_in GROUP BY service, t, rating;

-- Availability probes: one row per (service, ts); a re-sent result replaces itself.
CREATE TABLE IF NOT EXISTS {db}.probes (
    service LowCardinality(String),
    ts DateTime('UTC'),
    up UInt8,
    response_ms Int32,
    status UInt16,
    error String
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (service, ts);

-- Costs: the latest post for a (service, period, start, channel) is the cost of that period.
CREATE TABLE IF NOT EXISTS {db}.costs (
    service LowCardinality(String),
    period LowCardinality(String),
    start DateTime('UTC'),
    channel LowCardinality(String),
    amount_e4 Int64,
    id String,
    received_ms UInt64
) ENGINE = ReplacingMergeTree(received_ms) ORDER BY (service, period, start, channel);
