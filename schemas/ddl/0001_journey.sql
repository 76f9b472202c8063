-- Journey (Stageprompt) events and their live aggregates. One dialect: ClickHouse 18.16 and 26.x.
-- The processor inserts into journey_in (engine Null, stores nothing); the materialized views
-- fan each insert out. Every aggregate is a set (uniqExact), so a duplicate event or a replayed
-- Kafka message merges into the same figure: writes are idempotent by construction.

CREATE TABLE IF NOT EXISTS {db}.journey_in (
    id String,
    service String,
    action String,
    label String,
    kind String,
    path String,
    ts DateTime('UTC'),
    received DateTime('UTC'),
    visitor UInt64
) ENGINE = Null;

-- Every event once (by id), for analysis beyond the live figures.
CREATE TABLE IF NOT EXISTS {db}.journey_events (
    id String,
    service String,
    action String,
    label String,
    kind String,
    path String,
    ts DateTime('UTC'),
    received DateTime('UTC'),
    visitor UInt64
) ENGINE = ReplacingMergeTree(received) PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.journey_events_mv TO {db}.journey_events AS
SELECT id, service, action, label, kind, path, ts, received, visitor FROM {db}.journey_in;

-- Distinct visitors per service per 10-second bucket of arrival time: "users on the service now"
-- is the union of the buckets of the last five minutes.
CREATE TABLE IF NOT EXISTS {db}.visitors_live (
    service String,
    bucket DateTime('UTC'),
    visitors AggregateFunction(uniqExact, UInt64)
) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(bucket) ORDER BY (service, bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.visitors_live_mv TO {db}.visitors_live AS
SELECT service, toDateTime(intDiv(toUInt32(received), 10) * 10, 'UTC') AS bucket,
       uniqExactState(visitor) AS visitors
FROM {db}.journey_in GROUP BY service, bucket;

-- Events per service, minute (of the event's own timestamp), action, label and kind, counted
-- as distinct event ids so that duplicates never change a count.
CREATE TABLE IF NOT EXISTS {db}.journey_counts_minute (
    service String,
    minute DateTime('UTC'),
    action String,
    label String,
    kind String,
    events AggregateFunction(uniqExact, UInt64)
) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(minute)
  ORDER BY (service, minute, action, label, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.journey_counts_minute_mv TO {db}.journey_counts_minute AS
SELECT service, toStartOfMinute(ts) AS minute, action, label, kind,
       uniqExactState(cityHash64(id)) AS events
FROM {db}.journey_in GROUP BY service, minute, action, label, kind;
