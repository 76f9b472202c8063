-- Availability probes as sums per minute, hour and day. One dialect: ClickHouse 18.16 and 26.x.
--
-- 0003's probes table kept a row per probe, replaced by (service, ts) only when parts merged,
-- so every read grouped the window's probes by (service, ts) first: a year of one-a-minute
-- probes was half a million rows, about 0.1 s a read. Probes are now counted as transactions
-- are (0003): the processor inserts into probe_in only the probes whose (service, id, minute)
-- is not stored yet (stream_processors.kpi_sink.CountedSink, looking them up in probe_events;
-- a probe's id is its service and timestamp, schemas.availability.event_id), and the views
-- keep each probe once in probe_events and its figures in the minute, hour and day sums.
-- edge_ms is the upper edge of the response time's histogram bucket
-- (pipeline.kpi.bucket_edge_ms), -1 for a probe without a response time.

CREATE TABLE IF NOT EXISTS {db}.probe_in (
    service LowCardinality(String),
    id String,
    ts DateTime('UTC'),
    up UInt8,
    response_ms Int32,
    status UInt16,
    error String,
    edge_ms Int64
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS {db}.probe_events (
    service LowCardinality(String),
    id String,
    ts DateTime('UTC'),
    up UInt8,
    response_ms Int32,
    status UInt16,
    error String
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (service, ts, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.probe_events_mv TO {db}.probe_events AS
SELECT service, id, ts, up, response_ms, status, error FROM {db}.probe_in;

CREATE TABLE IF NOT EXISTS {db}.probe_minute (
    service LowCardinality(String),
    t DateTime('UTC'),
    edge_ms Int64,
    probes UInt64,
    ups UInt64,
    rt_n UInt64,
    rt_sum_ms Int64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMM(t) ORDER BY (service, t, edge_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.probe_minute_mv TO {db}.probe_minute AS
SELECT service, toStartOfMinute(ts) AS t, edge_ms, count() AS probes, sum(toUInt64(up)) AS ups,
       countIf(response_ms >= 0) AS rt_n, sumIf(toInt64(response_ms), response_ms >= 0) AS rt_sum_ms
FROM {db}.probe_in GROUP BY service, t, edge_ms;

CREATE TABLE IF NOT EXISTS {db}.probe_hour (
    service LowCardinality(String),
    t DateTime('UTC'),
    edge_ms Int64,
    probes UInt64,
    ups UInt64,
    rt_n UInt64,
    rt_sum_ms Int64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, edge_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.probe_hour_mv TO {db}.probe_hour AS
SELECT service, toStartOfHour(ts) AS t, edge_ms, count() AS probes, sum(toUInt64(up)) AS ups,
       countIf(response_ms >= 0) AS rt_n, sumIf(toInt64(response_ms), response_ms >= 0) AS rt_sum_ms
FROM {db}.probe_in GROUP BY service, t, edge_ms;

CREATE TABLE IF NOT EXISTS {db}.probe_day (
    service LowCardinality(String),
    t DateTime('UTC'),
    edge_ms Int64,
    probes UInt64,
    ups UInt64,
    rt_n UInt64,
    rt_sum_ms Int64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, edge_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.probe_day_mv TO {db}.probe_day AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, edge_ms, count() AS probes, sum(toUInt64(up)) AS ups,
       countIf(response_ms >= 0) AS rt_n, sumIf(toInt64(response_ms), response_ms >= 0) AS rt_sum_ms
FROM {db}.probe_in GROUP BY service, t, edge_ms;

-- Nothing reads or writes 0003's probes table any more. Its rows are not copied: nothing was
-- released with them, and a copy would count twice if two processes raced through the
-- migrations. Dropping alone is race-free: every process creates it (0003) before it drops it.
DROP TABLE IF EXISTS {db}.probes;
