-- Journey counts as sums per minute, hour and day. One dialect: ClickHouse 18.16 and 26.x.
--
-- 0001's journey_counts_minute kept a uniqExact set of event ids per (service, minute, action,
-- label, kind), so duplicates merged away in the table itself. But a read merged those sets:
-- a year of one busy service was 2.9 million set rows and about 0.85 s, and the cost grew with
-- every event. Journeys are now counted as transactions are (0003): the processor inserts into
-- journey_in only the events whose (service, id, minute) is not stored yet
-- (stream_processors.kpi_sink.CountedSink, looking them up in journey_events), so the counts
-- below are plain sums, read from the coarsest table that fits (pipeline.kpi_sql.cover).
-- Every journey event of a service travels on one partition (pipeline.topics), so one worker
-- counts a service.
--
-- The tables take the columns of journey_in as they are (String, not LowCardinality: 18.16's
-- views do not convert).

CREATE TABLE IF NOT EXISTS {db}.journey_minute (
    service String,
    t DateTime('UTC'),
    action String,
    label String,
    kind String,
    events UInt64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMM(t) ORDER BY (service, t, action, label, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.journey_minute_mv TO {db}.journey_minute AS
SELECT service, toStartOfMinute(ts) AS t, action, label, kind, count() AS events
FROM {db}.journey_in GROUP BY service, t, action, label, kind;

CREATE TABLE IF NOT EXISTS {db}.journey_hour (
    service String,
    t DateTime('UTC'),
    action String,
    label String,
    kind String,
    events UInt64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, action, label, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.journey_hour_mv TO {db}.journey_hour AS
SELECT service, toStartOfHour(ts) AS t, action, label, kind, count() AS events
FROM {db}.journey_in GROUP BY service, t, action, label, kind;

CREATE TABLE IF NOT EXISTS {db}.journey_day (
    service String,
    t DateTime('UTC'),
    action String,
    label String,
    kind String,
    events UInt64
) ENGINE = SummingMergeTree PARTITION BY toYear(t) ORDER BY (service, t, action, label, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.journey_day_mv TO {db}.journey_day AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, action, label, kind, count() AS events
FROM {db}.journey_in GROUP BY service, t, action, label, kind;

-- Nothing reads or writes 0001's set counts any more. Their rows are not copied: nothing was
-- released with them, and a copy would count twice if two processes raced through the
-- migrations. Dropping alone is race-free: every process creates them (0001) before it drops
-- them here. The view goes first, so no insert feeds a table being dropped.
DROP TABLE IF EXISTS {db}.journey_counts_minute_mv;
DROP TABLE IF EXISTS {db}.journey_counts_minute;
