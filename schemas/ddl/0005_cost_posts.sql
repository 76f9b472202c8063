-- Costs as posts. One dialect: ClickHouse 18.16 and 26.x.
--
-- 0003's costs table kept one row per (service, period, start, channel), replaced by the
-- greatest received_ms. A client's retry of an older post (same id) gets a new received_ms, so
-- it replaced the correction posted after it. Here every arrival of every post is kept, and the
-- read (pipeline.kpi_sql.cost_sql) decides: a post is its id, its time is the FIRST arrival of
-- that id (a retry or a replayed Kafka message never moves it), and the figure of a (service,
-- period, start, channel) is the amount of the post whose first arrival is latest (the greater
-- id on a tie). Plain MergeTree: merges remove nothing, so no merge can lose an id's first
-- arrival, and the read is the same before and after them. Posts are few (a handful per
-- service and period), so the repeats they keep cost nothing.

CREATE TABLE IF NOT EXISTS {db}.cost_posts (
    service LowCardinality(String),
    period LowCardinality(String),
    start DateTime('UTC'),
    channel LowCardinality(String),
    id String,
    amount_e4 Int64,
    received_ms UInt64
) ENGINE = MergeTree ORDER BY (service, period, start, channel, id);

-- Nothing reads or writes 0003's costs table any more. Its rows are not copied: the costs were
-- never released, and a copy (INSERT ... SELECT FROM costs) would fail in a second process
-- racing through the migrations after the first dropped it. Dropping alone is race-free: every
-- process creates costs (0003) before it drops it here.
DROP TABLE IF EXISTS {db}.costs;
