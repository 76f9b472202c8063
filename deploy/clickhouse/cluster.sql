-- The journey schema for a replicated ClickHouse cluster (macros {cluster}, {shard}, {replica}).
-- Create these before `perfplat init`; its IF NOT EXISTS migrations then leave them alone.
-- Each worker inserts into perfplat.journey_in on its local node.

CREATE DATABASE IF NOT EXISTS perfplat ON CLUSTER '{cluster}';

CREATE TABLE IF NOT EXISTS perfplat.journey_in ON CLUSTER '{cluster}' (
    id String, service String, action String, label String, kind String, path String,
    ts DateTime('UTC'), received DateTime('UTC'), visitor UInt64
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS perfplat.journey_events_local ON CLUSTER '{cluster}' (
    id String, service String, action String, label String, kind String, path String,
    ts DateTime('UTC'), received DateTime('UTC'), visitor UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/journey_events', '{replica}', received)
  PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, id);

CREATE TABLE IF NOT EXISTS perfplat.journey_events ON CLUSTER '{cluster}' AS perfplat.journey_events_local
  ENGINE = Distributed('{cluster}', perfplat, journey_events_local, cityHash64(id));

CREATE TABLE IF NOT EXISTS perfplat.visitors_live_local ON CLUSTER '{cluster}' (
    service String, bucket DateTime('UTC'), visitors AggregateFunction(uniqExact, UInt64)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/perfplat/visitors_live', '{replica}')
  PARTITION BY toYYYYMMDD(bucket) ORDER BY (service, bucket);

CREATE TABLE IF NOT EXISTS perfplat.visitors_live ON CLUSTER '{cluster}' AS perfplat.visitors_live_local
  ENGINE = Distributed('{cluster}', perfplat, visitors_live_local, rand());

CREATE TABLE IF NOT EXISTS perfplat.journey_counts_minute_local ON CLUSTER '{cluster}' (
    service String, minute DateTime('UTC'), action String, label String, kind String,
    events AggregateFunction(uniqExact, UInt64)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/perfplat/journey_counts_minute', '{replica}')
  PARTITION BY toYYYYMM(minute) ORDER BY (service, minute, action, label, kind);

CREATE TABLE IF NOT EXISTS perfplat.journey_counts_minute ON CLUSTER '{cluster}'
  AS perfplat.journey_counts_minute_local
  ENGINE = Distributed('{cluster}', perfplat, journey_counts_minute_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.journey_events_mv ON CLUSTER '{cluster}'
  TO perfplat.journey_events_local AS
  SELECT id, service, action, label, kind, path, ts, received, visitor FROM perfplat.journey_in;

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.visitors_live_mv ON CLUSTER '{cluster}'
  TO perfplat.visitors_live_local AS
  SELECT service, toDateTime(intDiv(toUInt32(received), 10) * 10, 'UTC') AS bucket,
         uniqExactState(visitor) AS visitors
  FROM perfplat.journey_in GROUP BY service, bucket;

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.journey_counts_minute_mv ON CLUSTER '{cluster}'
  TO perfplat.journey_counts_minute_local AS
  SELECT service, toStartOfMinute(ts) AS minute, action, label, kind,
         uniqExactState(cityHash64(id)) AS events
  FROM perfplat.journey_in GROUP BY service, minute, action, label, kind;
