-- perfplat's ClickHouse schema for a replicated, sharded cluster (macros {cluster}, {shard},
-- {replica}). It covers every table and materialized view that the migrations
-- schemas/ddl/0001..0007 leave in place, and nothing they drop (0005 drops costs, 0006 drops
-- journey_counts_minute and its view, 0007 drops probes). One dialect: it parses on ClickHouse
-- 18.16 and 26.x.
-- tests/integration/test_cluster_ddl.py checks it against the migrations.
--
-- Form. Each MergeTree table <name> of the migrations is two tables here:
--   <name>_local  Replicated<engine>('/clickhouse/tables/{shard}/perfplat/<name>', '{replica}',
--                 <the migration's engine parameters>) with the migration's columns (types
--                 included), PARTITION BY and ORDER BY;
--   <name>        Distributed('{cluster}', perfplat, <name>_local, <sharding key>): the name
--                 perfplat reads and writes, so every query sees the whole cluster.
-- The Null input tables (journey_in, tx_in, rating_in, probe_in) are plain tables on every node.
-- Each materialized view is the migration's SELECT writing TO the node's <name>_local; the
-- views over records read records_local, where the rows land (a view over the Distributed
-- records would run on the node that took the insert and fill the wrong shard).
--
-- Use:
-- 1. On every node: the macros {cluster}, {shard} and {replica}; the cluster in remote_servers
--    with <internal_replication>true</internal_replication> (a Distributed insert then goes to
--    one replica per shard, so the views over records run once and replication copies the rest);
--    ZooKeeper and distributed_ddl (for ON CLUSTER); on 18.16, also
--    allow_experimental_low_cardinality_type = 1 in the default profile (the LowCardinality DDL).
-- 2. Run this file once, on any node: clickhouse-client --multiquery < cluster.sql
-- 3. Then `perfplat init` with PERFPLAT_CLICKHOUSE__DATABASE=perfplat. Its CREATE ... IF NOT
--    EXISTS migrations find these tables and leave them as they are. For another database,
--    replace `perfplat` throughout, the ZooKeeper paths included.
-- In the profile of perfplat's user, set insert_distributed_sync = 1: the sinks read back what
-- they wrote (records: record_index, record_ops and data_set_epochs every batch; journey, tx,
-- rating and probe events: the events tables), and an asynchronous Distributed insert may not
-- have reached its shard yet. With more than one replica per shard, a read may also reach a
-- replica that has not fetched the insert yet, and the records sink then misses a record's
-- current row and leaves it live twice (seen on a 2 x 2 cluster of 18.16 with the sink's worker
-- on the other shard). insert_quorum = <replicas per shard> closes that gap: an insert returns
-- once every replica has it. Every shard needs that many replicas, and writes stop (the sinks
-- retry) while one is down.
--
-- schema_migrations is not here, on purpose: migrate() creates it on each node, local and
-- unreplicated. The migrations run without ON CLUSTER, so they act only on the node a process
-- connects to (on a fresh cluster 0001 and 0003 create journey_counts_minute, costs and probes
-- there, and 0005, 0006 and 0007 drop them again); which migrations ran is a fact about that
-- node. A replicated record would let one node's run stand for nodes where nothing ran.
--
-- Sharding keys. A key decides the shard only for rows inserted through a Distributed table:
-- records, record_fields, data_set_epochs, record_ops (its zero-row operations), cost_posts and
-- alert_events. Each key is a hash of the first ORDER BY column, so all rows of one
-- ReplacingMergeTree, CollapsingMergeTree or SummingMergeTree key are on one shard and merge
-- there as on a single node:
--   cityHash64(service)   the service tables, which the sinks and the readers look up by service
--                         (an alert's newer version replaces the older one only on the same
--                         shard);
--   cityHash64(data_set)  the data-set tables: a record's cancel row must reach the shard of the
--                         row it cancels, and the views over records_local fill record_index,
--                         record_ops and record_days on the data set's shard, where the sink's
--                         own record_ops, record_fields and data_set_epochs rows go too.
-- Rows inserted into a Null table (journey, tx, rating and probe events) go to the <name>_local
-- tables of the node the worker is connected to, whatever the key; the key (the service, as for
-- the other service tables) only serves direct inserts into the Distributed table, such as a
-- backfill. So a service's events are on the shard of the worker that counted them, and may span
-- shards after a rebalance: the sinks look events up through the Distributed tables, so a replay
-- on another shard adds nothing, and the sums and visitor sets are read with sum() and
-- uniqExactMerge() ... GROUP BY across shards.
--
-- Upgrading a cluster made with the journey-only version of this file: CREATE ... IF NOT EXISTS
-- adds the missing tables and leaves existing ones as they are (journey_events and visitors_live
-- keep their old sharding keys, which only direct inserts use); the DROPs at the end remove
-- journey_counts_minute on every node (0006 drops it only on the node `perfplat init` runs on).

CREATE DATABASE IF NOT EXISTS perfplat ON CLUSTER '{cluster}';

-- 0001: journey events ----------------------------------------------------------------------
-- Each worker inserts into perfplat.journey_in on the node it is connected to.

CREATE TABLE IF NOT EXISTS perfplat.journey_in ON CLUSTER '{cluster}' (
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

CREATE TABLE IF NOT EXISTS perfplat.journey_events_local ON CLUSTER '{cluster}' (
    id String,
    service String,
    action String,
    label String,
    kind String,
    path String,
    ts DateTime('UTC'),
    received DateTime('UTC'),
    visitor UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/journey_events', '{replica}', received)
  PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, id);

CREATE TABLE IF NOT EXISTS perfplat.journey_events ON CLUSTER '{cluster}' AS perfplat.journey_events_local
  ENGINE = Distributed('{cluster}', perfplat, journey_events_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.journey_events_mv ON CLUSTER '{cluster}'
  TO perfplat.journey_events_local AS
SELECT id, service, action, label, kind, path, ts, received, visitor FROM perfplat.journey_in;

CREATE TABLE IF NOT EXISTS perfplat.visitors_live_local ON CLUSTER '{cluster}' (
    service String,
    bucket DateTime('UTC'),
    visitors AggregateFunction(uniqExact, UInt64)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/perfplat/visitors_live', '{replica}')
  PARTITION BY toYYYYMMDD(bucket) ORDER BY (service, bucket);

CREATE TABLE IF NOT EXISTS perfplat.visitors_live ON CLUSTER '{cluster}' AS perfplat.visitors_live_local
  ENGINE = Distributed('{cluster}', perfplat, visitors_live_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.visitors_live_mv ON CLUSTER '{cluster}'
  TO perfplat.visitors_live_local AS
SELECT service, toDateTime(intDiv(toUInt32(received), 10) * 10, 'UTC') AS bucket,
       uniqExactState(visitor) AS visitors
FROM perfplat.journey_in GROUP BY service, bucket;

-- 0006: journey counts as sums per minute, hour and day --------------------------------------

CREATE TABLE IF NOT EXISTS perfplat.journey_minute_local ON CLUSTER '{cluster}' (
    service String,
    t DateTime('UTC'),
    action String,
    label String,
    kind String,
    events UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/journey_minute', '{replica}')
  PARTITION BY toYYYYMM(t) ORDER BY (service, t, action, label, kind);

CREATE TABLE IF NOT EXISTS perfplat.journey_minute ON CLUSTER '{cluster}' AS perfplat.journey_minute_local
  ENGINE = Distributed('{cluster}', perfplat, journey_minute_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.journey_minute_mv ON CLUSTER '{cluster}'
  TO perfplat.journey_minute_local AS
SELECT service, toStartOfMinute(ts) AS t, action, label, kind, count() AS events
FROM perfplat.journey_in GROUP BY service, t, action, label, kind;

CREATE TABLE IF NOT EXISTS perfplat.journey_hour_local ON CLUSTER '{cluster}' (
    service String,
    t DateTime('UTC'),
    action String,
    label String,
    kind String,
    events UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/journey_hour', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, action, label, kind);

CREATE TABLE IF NOT EXISTS perfplat.journey_hour ON CLUSTER '{cluster}' AS perfplat.journey_hour_local
  ENGINE = Distributed('{cluster}', perfplat, journey_hour_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.journey_hour_mv ON CLUSTER '{cluster}'
  TO perfplat.journey_hour_local AS
SELECT service, toStartOfHour(ts) AS t, action, label, kind, count() AS events
FROM perfplat.journey_in GROUP BY service, t, action, label, kind;

CREATE TABLE IF NOT EXISTS perfplat.journey_day_local ON CLUSTER '{cluster}' (
    service String,
    t DateTime('UTC'),
    action String,
    label String,
    kind String,
    events UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/journey_day', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, action, label, kind);

CREATE TABLE IF NOT EXISTS perfplat.journey_day ON CLUSTER '{cluster}' AS perfplat.journey_day_local
  ENGINE = Distributed('{cluster}', perfplat, journey_day_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.journey_day_mv ON CLUSTER '{cluster}'
  TO perfplat.journey_day_local AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, action, label, kind, count() AS events
FROM perfplat.journey_in GROUP BY service, t, action, label, kind;

-- 0002: data-set records --------------------------------------------------------------------
-- The records sink inserts into the Distributed records, record_fields, data_set_epochs and
-- record_ops; the views below run where the records rows land (records_local).

CREATE TABLE IF NOT EXISTS perfplat.records_local ON CLUSTER '{cluster}' (
    data_set LowCardinality(String),
    epoch UInt64,
    ts DateTime('UTC'),
    has_ts UInt8,
    id String,
    sign Int8,
    version UInt64,
    op String,
    updated DateTime('UTC'),
    doc String,
    s0 LowCardinality(String), s1 LowCardinality(String), s2 LowCardinality(String),
    s3 LowCardinality(String), s4 LowCardinality(String), s5 LowCardinality(String),
    s6 LowCardinality(String), s7 LowCardinality(String), s8 LowCardinality(String),
    s9 LowCardinality(String), s10 LowCardinality(String), s11 LowCardinality(String),
    s12 LowCardinality(String), s13 LowCardinality(String), s14 LowCardinality(String),
    s15 LowCardinality(String), s16 LowCardinality(String), s17 LowCardinality(String),
    s18 LowCardinality(String), s19 LowCardinality(String), s20 LowCardinality(String),
    s21 LowCardinality(String), s22 LowCardinality(String), s23 LowCardinality(String)
) ENGINE = ReplicatedCollapsingMergeTree('/clickhouse/tables/{shard}/perfplat/records', '{replica}', sign)
  PARTITION BY toYYYYMM(ts) ORDER BY (data_set, epoch, ts, id);

CREATE TABLE IF NOT EXISTS perfplat.records ON CLUSTER '{cluster}' AS perfplat.records_local
  ENGINE = Distributed('{cluster}', perfplat, records_local, cityHash64(data_set));

CREATE TABLE IF NOT EXISTS perfplat.record_index_local ON CLUSTER '{cluster}' (
    data_set LowCardinality(String),
    epoch UInt64,
    id String,
    ts DateTime('UTC'),
    sign Int8,
    version UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/record_index', '{replica}', version)
  ORDER BY (data_set, epoch, id);

CREATE TABLE IF NOT EXISTS perfplat.record_index ON CLUSTER '{cluster}' AS perfplat.record_index_local
  ENGINE = Distributed('{cluster}', perfplat, record_index_local, cityHash64(data_set));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.record_index_mv ON CLUSTER '{cluster}'
  TO perfplat.record_index_local AS
SELECT data_set, epoch, id, ts, sign, version FROM perfplat.records_local;

CREATE TABLE IF NOT EXISTS perfplat.record_ops_local ON CLUSTER '{cluster}' (
    data_set LowCardinality(String),
    op String,
    rows UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/record_ops', '{replica}')
  ORDER BY (data_set, op);

CREATE TABLE IF NOT EXISTS perfplat.record_ops ON CLUSTER '{cluster}' AS perfplat.record_ops_local
  ENGINE = Distributed('{cluster}', perfplat, record_ops_local, cityHash64(data_set));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.record_ops_mv ON CLUSTER '{cluster}'
  TO perfplat.record_ops_local AS
SELECT data_set, op, count() AS rows FROM perfplat.records_local GROUP BY data_set, op;

CREATE TABLE IF NOT EXISTS perfplat.record_fields_local ON CLUSTER '{cluster}' (
    data_set String,
    field String,
    slot UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/record_fields', '{replica}')
  ORDER BY (data_set, field);

CREATE TABLE IF NOT EXISTS perfplat.record_fields ON CLUSTER '{cluster}' AS perfplat.record_fields_local
  ENGINE = Distributed('{cluster}', perfplat, record_fields_local, cityHash64(data_set));

CREATE TABLE IF NOT EXISTS perfplat.data_set_epochs_local ON CLUSTER '{cluster}' (
    data_set String,
    epoch UInt64,
    op String,
    at DateTime('UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/data_set_epochs', '{replica}')
  ORDER BY (data_set, epoch);

CREATE TABLE IF NOT EXISTS perfplat.data_set_epochs ON CLUSTER '{cluster}' AS perfplat.data_set_epochs_local
  ENGINE = Distributed('{cluster}', perfplat, data_set_epochs_local, cityHash64(data_set));

CREATE TABLE IF NOT EXISTS perfplat.record_days_local ON CLUSTER '{cluster}' (
    data_set LowCardinality(String), epoch UInt64, has_ts UInt8, day DateTime('UTC'), dims UInt64,
    d0 String, d1 String, d2 String, d3 String, d4 String, d5 String, d6 String, d7 String,
    d8 String, d9 String, d10 String, d11 String, d12 String, d13 String, d14 String, d15 String,
    d16 String, d17 String, d18 String, d19 String, d20 String, d21 String, d22 String, d23 String,
    rows Int64,
    n0 Int64, bad0 Int64, fl0 Int64, isum0 Int64, fsum0 Float64,
    n1 Int64, bad1 Int64, fl1 Int64, isum1 Int64, fsum1 Float64,
    n2 Int64, bad2 Int64, fl2 Int64, isum2 Int64, fsum2 Float64,
    n3 Int64, bad3 Int64, fl3 Int64, isum3 Int64, fsum3 Float64,
    n4 Int64, bad4 Int64, fl4 Int64, isum4 Int64, fsum4 Float64,
    n5 Int64, bad5 Int64, fl5 Int64, isum5 Int64, fsum5 Float64,
    n6 Int64, bad6 Int64, fl6 Int64, isum6 Int64, fsum6 Float64,
    n7 Int64, bad7 Int64, fl7 Int64, isum7 Int64, fsum7 Float64,
    n8 Int64, bad8 Int64, fl8 Int64, isum8 Int64, fsum8 Float64,
    n9 Int64, bad9 Int64, fl9 Int64, isum9 Int64, fsum9 Float64,
    n10 Int64, bad10 Int64, fl10 Int64, isum10 Int64, fsum10 Float64,
    n11 Int64, bad11 Int64, fl11 Int64, isum11 Int64, fsum11 Float64,
    n12 Int64, bad12 Int64, fl12 Int64, isum12 Int64, fsum12 Float64,
    n13 Int64, bad13 Int64, fl13 Int64, isum13 Int64, fsum13 Float64,
    n14 Int64, bad14 Int64, fl14 Int64, isum14 Int64, fsum14 Float64,
    n15 Int64, bad15 Int64, fl15 Int64, isum15 Int64, fsum15 Float64,
    n16 Int64, bad16 Int64, fl16 Int64, isum16 Int64, fsum16 Float64,
    n17 Int64, bad17 Int64, fl17 Int64, isum17 Int64, fsum17 Float64,
    n18 Int64, bad18 Int64, fl18 Int64, isum18 Int64, fsum18 Float64,
    n19 Int64, bad19 Int64, fl19 Int64, isum19 Int64, fsum19 Float64,
    n20 Int64, bad20 Int64, fl20 Int64, isum20 Int64, fsum20 Float64,
    n21 Int64, bad21 Int64, fl21 Int64, isum21 Int64, fsum21 Float64,
    n22 Int64, bad22 Int64, fl22 Int64, isum22 Int64, fsum22 Float64,
    n23 Int64, bad23 Int64, fl23 Int64, isum23 Int64, fsum23 Float64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/record_days', '{replica}')
  PARTITION BY toYear(day) ORDER BY (data_set, epoch, has_ts, day, dims);

CREATE TABLE IF NOT EXISTS perfplat.record_days ON CLUSTER '{cluster}' AS perfplat.record_days_local
  ENGINE = Distributed('{cluster}', perfplat, record_days_local, cityHash64(data_set));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.record_days_mv ON CLUSTER '{cluster}'
  TO perfplat.record_days_local AS
SELECT data_set, epoch, has_ts, toStartOfDay(ts) AS day,
       cityHash64(multiIf(s0 = '', '', isNotNull(toFloat64OrNull(s0)), '#', s0), multiIf(s1 = '', '', isNotNull(toFloat64OrNull(s1)), '#', s1), multiIf(s2 = '', '', isNotNull(toFloat64OrNull(s2)), '#', s2), multiIf(s3 = '', '', isNotNull(toFloat64OrNull(s3)), '#', s3), multiIf(s4 = '', '', isNotNull(toFloat64OrNull(s4)), '#', s4), multiIf(s5 = '', '', isNotNull(toFloat64OrNull(s5)), '#', s5), multiIf(s6 = '', '', isNotNull(toFloat64OrNull(s6)), '#', s6), multiIf(s7 = '', '', isNotNull(toFloat64OrNull(s7)), '#', s7), multiIf(s8 = '', '', isNotNull(toFloat64OrNull(s8)), '#', s8), multiIf(s9 = '', '', isNotNull(toFloat64OrNull(s9)), '#', s9), multiIf(s10 = '', '', isNotNull(toFloat64OrNull(s10)), '#', s10), multiIf(s11 = '', '', isNotNull(toFloat64OrNull(s11)), '#', s11), multiIf(s12 = '', '', isNotNull(toFloat64OrNull(s12)), '#', s12), multiIf(s13 = '', '', isNotNull(toFloat64OrNull(s13)), '#', s13), multiIf(s14 = '', '', isNotNull(toFloat64OrNull(s14)), '#', s14), multiIf(s15 = '', '', isNotNull(toFloat64OrNull(s15)), '#', s15), multiIf(s16 = '', '', isNotNull(toFloat64OrNull(s16)), '#', s16), multiIf(s17 = '', '', isNotNull(toFloat64OrNull(s17)), '#', s17), multiIf(s18 = '', '', isNotNull(toFloat64OrNull(s18)), '#', s18), multiIf(s19 = '', '', isNotNull(toFloat64OrNull(s19)), '#', s19), multiIf(s20 = '', '', isNotNull(toFloat64OrNull(s20)), '#', s20), multiIf(s21 = '', '', isNotNull(toFloat64OrNull(s21)), '#', s21), multiIf(s22 = '', '', isNotNull(toFloat64OrNull(s22)), '#', s22), multiIf(s23 = '', '', isNotNull(toFloat64OrNull(s23)), '#', s23)) AS dims,
       any(multiIf(s0 = '', '', isNotNull(toFloat64OrNull(s0)), '#', s0)) AS d0,
       any(multiIf(s1 = '', '', isNotNull(toFloat64OrNull(s1)), '#', s1)) AS d1,
       any(multiIf(s2 = '', '', isNotNull(toFloat64OrNull(s2)), '#', s2)) AS d2,
       any(multiIf(s3 = '', '', isNotNull(toFloat64OrNull(s3)), '#', s3)) AS d3,
       any(multiIf(s4 = '', '', isNotNull(toFloat64OrNull(s4)), '#', s4)) AS d4,
       any(multiIf(s5 = '', '', isNotNull(toFloat64OrNull(s5)), '#', s5)) AS d5,
       any(multiIf(s6 = '', '', isNotNull(toFloat64OrNull(s6)), '#', s6)) AS d6,
       any(multiIf(s7 = '', '', isNotNull(toFloat64OrNull(s7)), '#', s7)) AS d7,
       any(multiIf(s8 = '', '', isNotNull(toFloat64OrNull(s8)), '#', s8)) AS d8,
       any(multiIf(s9 = '', '', isNotNull(toFloat64OrNull(s9)), '#', s9)) AS d9,
       any(multiIf(s10 = '', '', isNotNull(toFloat64OrNull(s10)), '#', s10)) AS d10,
       any(multiIf(s11 = '', '', isNotNull(toFloat64OrNull(s11)), '#', s11)) AS d11,
       any(multiIf(s12 = '', '', isNotNull(toFloat64OrNull(s12)), '#', s12)) AS d12,
       any(multiIf(s13 = '', '', isNotNull(toFloat64OrNull(s13)), '#', s13)) AS d13,
       any(multiIf(s14 = '', '', isNotNull(toFloat64OrNull(s14)), '#', s14)) AS d14,
       any(multiIf(s15 = '', '', isNotNull(toFloat64OrNull(s15)), '#', s15)) AS d15,
       any(multiIf(s16 = '', '', isNotNull(toFloat64OrNull(s16)), '#', s16)) AS d16,
       any(multiIf(s17 = '', '', isNotNull(toFloat64OrNull(s17)), '#', s17)) AS d17,
       any(multiIf(s18 = '', '', isNotNull(toFloat64OrNull(s18)), '#', s18)) AS d18,
       any(multiIf(s19 = '', '', isNotNull(toFloat64OrNull(s19)), '#', s19)) AS d19,
       any(multiIf(s20 = '', '', isNotNull(toFloat64OrNull(s20)), '#', s20)) AS d20,
       any(multiIf(s21 = '', '', isNotNull(toFloat64OrNull(s21)), '#', s21)) AS d21,
       any(multiIf(s22 = '', '', isNotNull(toFloat64OrNull(s22)), '#', s22)) AS d22,
       any(multiIf(s23 = '', '', isNotNull(toFloat64OrNull(s23)), '#', s23)) AS d23,
       sum(sign) AS rows,
       sum(sign * (s0 != '')) AS n0,
       sum(sign * (s0 != '' AND isNull(toFloat64OrNull(s0)))) AS bad0,
       sum(sign * (s0 != '' AND (s0 < '-' OR s0 >= ':' OR position(s0, '.') > 0 OR position(s0, 'e') > 0 OR position(s0, 'E') > 0))) AS fl0,
       sum(sign * toInt64OrZero(s0)) AS isum0,
       sum(sign * toFloat64OrZero(s0)) AS fsum0,
       sum(sign * (s1 != '')) AS n1,
       sum(sign * (s1 != '' AND isNull(toFloat64OrNull(s1)))) AS bad1,
       sum(sign * (s1 != '' AND (s1 < '-' OR s1 >= ':' OR position(s1, '.') > 0 OR position(s1, 'e') > 0 OR position(s1, 'E') > 0))) AS fl1,
       sum(sign * toInt64OrZero(s1)) AS isum1,
       sum(sign * toFloat64OrZero(s1)) AS fsum1,
       sum(sign * (s2 != '')) AS n2,
       sum(sign * (s2 != '' AND isNull(toFloat64OrNull(s2)))) AS bad2,
       sum(sign * (s2 != '' AND (s2 < '-' OR s2 >= ':' OR position(s2, '.') > 0 OR position(s2, 'e') > 0 OR position(s2, 'E') > 0))) AS fl2,
       sum(sign * toInt64OrZero(s2)) AS isum2,
       sum(sign * toFloat64OrZero(s2)) AS fsum2,
       sum(sign * (s3 != '')) AS n3,
       sum(sign * (s3 != '' AND isNull(toFloat64OrNull(s3)))) AS bad3,
       sum(sign * (s3 != '' AND (s3 < '-' OR s3 >= ':' OR position(s3, '.') > 0 OR position(s3, 'e') > 0 OR position(s3, 'E') > 0))) AS fl3,
       sum(sign * toInt64OrZero(s3)) AS isum3,
       sum(sign * toFloat64OrZero(s3)) AS fsum3,
       sum(sign * (s4 != '')) AS n4,
       sum(sign * (s4 != '' AND isNull(toFloat64OrNull(s4)))) AS bad4,
       sum(sign * (s4 != '' AND (s4 < '-' OR s4 >= ':' OR position(s4, '.') > 0 OR position(s4, 'e') > 0 OR position(s4, 'E') > 0))) AS fl4,
       sum(sign * toInt64OrZero(s4)) AS isum4,
       sum(sign * toFloat64OrZero(s4)) AS fsum4,
       sum(sign * (s5 != '')) AS n5,
       sum(sign * (s5 != '' AND isNull(toFloat64OrNull(s5)))) AS bad5,
       sum(sign * (s5 != '' AND (s5 < '-' OR s5 >= ':' OR position(s5, '.') > 0 OR position(s5, 'e') > 0 OR position(s5, 'E') > 0))) AS fl5,
       sum(sign * toInt64OrZero(s5)) AS isum5,
       sum(sign * toFloat64OrZero(s5)) AS fsum5,
       sum(sign * (s6 != '')) AS n6,
       sum(sign * (s6 != '' AND isNull(toFloat64OrNull(s6)))) AS bad6,
       sum(sign * (s6 != '' AND (s6 < '-' OR s6 >= ':' OR position(s6, '.') > 0 OR position(s6, 'e') > 0 OR position(s6, 'E') > 0))) AS fl6,
       sum(sign * toInt64OrZero(s6)) AS isum6,
       sum(sign * toFloat64OrZero(s6)) AS fsum6,
       sum(sign * (s7 != '')) AS n7,
       sum(sign * (s7 != '' AND isNull(toFloat64OrNull(s7)))) AS bad7,
       sum(sign * (s7 != '' AND (s7 < '-' OR s7 >= ':' OR position(s7, '.') > 0 OR position(s7, 'e') > 0 OR position(s7, 'E') > 0))) AS fl7,
       sum(sign * toInt64OrZero(s7)) AS isum7,
       sum(sign * toFloat64OrZero(s7)) AS fsum7,
       sum(sign * (s8 != '')) AS n8,
       sum(sign * (s8 != '' AND isNull(toFloat64OrNull(s8)))) AS bad8,
       sum(sign * (s8 != '' AND (s8 < '-' OR s8 >= ':' OR position(s8, '.') > 0 OR position(s8, 'e') > 0 OR position(s8, 'E') > 0))) AS fl8,
       sum(sign * toInt64OrZero(s8)) AS isum8,
       sum(sign * toFloat64OrZero(s8)) AS fsum8,
       sum(sign * (s9 != '')) AS n9,
       sum(sign * (s9 != '' AND isNull(toFloat64OrNull(s9)))) AS bad9,
       sum(sign * (s9 != '' AND (s9 < '-' OR s9 >= ':' OR position(s9, '.') > 0 OR position(s9, 'e') > 0 OR position(s9, 'E') > 0))) AS fl9,
       sum(sign * toInt64OrZero(s9)) AS isum9,
       sum(sign * toFloat64OrZero(s9)) AS fsum9,
       sum(sign * (s10 != '')) AS n10,
       sum(sign * (s10 != '' AND isNull(toFloat64OrNull(s10)))) AS bad10,
       sum(sign * (s10 != '' AND (s10 < '-' OR s10 >= ':' OR position(s10, '.') > 0 OR position(s10, 'e') > 0 OR position(s10, 'E') > 0))) AS fl10,
       sum(sign * toInt64OrZero(s10)) AS isum10,
       sum(sign * toFloat64OrZero(s10)) AS fsum10,
       sum(sign * (s11 != '')) AS n11,
       sum(sign * (s11 != '' AND isNull(toFloat64OrNull(s11)))) AS bad11,
       sum(sign * (s11 != '' AND (s11 < '-' OR s11 >= ':' OR position(s11, '.') > 0 OR position(s11, 'e') > 0 OR position(s11, 'E') > 0))) AS fl11,
       sum(sign * toInt64OrZero(s11)) AS isum11,
       sum(sign * toFloat64OrZero(s11)) AS fsum11,
       sum(sign * (s12 != '')) AS n12,
       sum(sign * (s12 != '' AND isNull(toFloat64OrNull(s12)))) AS bad12,
       sum(sign * (s12 != '' AND (s12 < '-' OR s12 >= ':' OR position(s12, '.') > 0 OR position(s12, 'e') > 0 OR position(s12, 'E') > 0))) AS fl12,
       sum(sign * toInt64OrZero(s12)) AS isum12,
       sum(sign * toFloat64OrZero(s12)) AS fsum12,
       sum(sign * (s13 != '')) AS n13,
       sum(sign * (s13 != '' AND isNull(toFloat64OrNull(s13)))) AS bad13,
       sum(sign * (s13 != '' AND (s13 < '-' OR s13 >= ':' OR position(s13, '.') > 0 OR position(s13, 'e') > 0 OR position(s13, 'E') > 0))) AS fl13,
       sum(sign * toInt64OrZero(s13)) AS isum13,
       sum(sign * toFloat64OrZero(s13)) AS fsum13,
       sum(sign * (s14 != '')) AS n14,
       sum(sign * (s14 != '' AND isNull(toFloat64OrNull(s14)))) AS bad14,
       sum(sign * (s14 != '' AND (s14 < '-' OR s14 >= ':' OR position(s14, '.') > 0 OR position(s14, 'e') > 0 OR position(s14, 'E') > 0))) AS fl14,
       sum(sign * toInt64OrZero(s14)) AS isum14,
       sum(sign * toFloat64OrZero(s14)) AS fsum14,
       sum(sign * (s15 != '')) AS n15,
       sum(sign * (s15 != '' AND isNull(toFloat64OrNull(s15)))) AS bad15,
       sum(sign * (s15 != '' AND (s15 < '-' OR s15 >= ':' OR position(s15, '.') > 0 OR position(s15, 'e') > 0 OR position(s15, 'E') > 0))) AS fl15,
       sum(sign * toInt64OrZero(s15)) AS isum15,
       sum(sign * toFloat64OrZero(s15)) AS fsum15,
       sum(sign * (s16 != '')) AS n16,
       sum(sign * (s16 != '' AND isNull(toFloat64OrNull(s16)))) AS bad16,
       sum(sign * (s16 != '' AND (s16 < '-' OR s16 >= ':' OR position(s16, '.') > 0 OR position(s16, 'e') > 0 OR position(s16, 'E') > 0))) AS fl16,
       sum(sign * toInt64OrZero(s16)) AS isum16,
       sum(sign * toFloat64OrZero(s16)) AS fsum16,
       sum(sign * (s17 != '')) AS n17,
       sum(sign * (s17 != '' AND isNull(toFloat64OrNull(s17)))) AS bad17,
       sum(sign * (s17 != '' AND (s17 < '-' OR s17 >= ':' OR position(s17, '.') > 0 OR position(s17, 'e') > 0 OR position(s17, 'E') > 0))) AS fl17,
       sum(sign * toInt64OrZero(s17)) AS isum17,
       sum(sign * toFloat64OrZero(s17)) AS fsum17,
       sum(sign * (s18 != '')) AS n18,
       sum(sign * (s18 != '' AND isNull(toFloat64OrNull(s18)))) AS bad18,
       sum(sign * (s18 != '' AND (s18 < '-' OR s18 >= ':' OR position(s18, '.') > 0 OR position(s18, 'e') > 0 OR position(s18, 'E') > 0))) AS fl18,
       sum(sign * toInt64OrZero(s18)) AS isum18,
       sum(sign * toFloat64OrZero(s18)) AS fsum18,
       sum(sign * (s19 != '')) AS n19,
       sum(sign * (s19 != '' AND isNull(toFloat64OrNull(s19)))) AS bad19,
       sum(sign * (s19 != '' AND (s19 < '-' OR s19 >= ':' OR position(s19, '.') > 0 OR position(s19, 'e') > 0 OR position(s19, 'E') > 0))) AS fl19,
       sum(sign * toInt64OrZero(s19)) AS isum19,
       sum(sign * toFloat64OrZero(s19)) AS fsum19,
       sum(sign * (s20 != '')) AS n20,
       sum(sign * (s20 != '' AND isNull(toFloat64OrNull(s20)))) AS bad20,
       sum(sign * (s20 != '' AND (s20 < '-' OR s20 >= ':' OR position(s20, '.') > 0 OR position(s20, 'e') > 0 OR position(s20, 'E') > 0))) AS fl20,
       sum(sign * toInt64OrZero(s20)) AS isum20,
       sum(sign * toFloat64OrZero(s20)) AS fsum20,
       sum(sign * (s21 != '')) AS n21,
       sum(sign * (s21 != '' AND isNull(toFloat64OrNull(s21)))) AS bad21,
       sum(sign * (s21 != '' AND (s21 < '-' OR s21 >= ':' OR position(s21, '.') > 0 OR position(s21, 'e') > 0 OR position(s21, 'E') > 0))) AS fl21,
       sum(sign * toInt64OrZero(s21)) AS isum21,
       sum(sign * toFloat64OrZero(s21)) AS fsum21,
       sum(sign * (s22 != '')) AS n22,
       sum(sign * (s22 != '' AND isNull(toFloat64OrNull(s22)))) AS bad22,
       sum(sign * (s22 != '' AND (s22 < '-' OR s22 >= ':' OR position(s22, '.') > 0 OR position(s22, 'e') > 0 OR position(s22, 'E') > 0))) AS fl22,
       sum(sign * toInt64OrZero(s22)) AS isum22,
       sum(sign * toFloat64OrZero(s22)) AS fsum22,
       sum(sign * (s23 != '')) AS n23,
       sum(sign * (s23 != '' AND isNull(toFloat64OrNull(s23)))) AS bad23,
       sum(sign * (s23 != '' AND (s23 < '-' OR s23 >= ':' OR position(s23, '.') > 0 OR position(s23, 'e') > 0 OR position(s23, 'E') > 0))) AS fl23,
       sum(sign * toInt64OrZero(s23)) AS isum23,
       sum(sign * toFloat64OrZero(s23)) AS fsum23
FROM perfplat.records_local GROUP BY data_set, epoch, has_ts, day, dims;

-- 0003: transactions and satisfaction ratings -----------------------------------------------
-- The sinks insert transactions into perfplat.tx_in and ratings into perfplat.rating_in on the
-- node they are connected to.

CREATE TABLE IF NOT EXISTS perfplat.tx_in ON CLUSTER '{cluster}' (
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

CREATE TABLE IF NOT EXISTS perfplat.tx_events_local ON CLUSTER '{cluster}' (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/tx_events', '{replica}', received)
  PARTITION BY toYYYYMM(ts) ORDER BY (service, ts, id);

CREATE TABLE IF NOT EXISTS perfplat.tx_events ON CLUSTER '{cluster}' AS perfplat.tx_events_local
  ENGINE = Distributed('{cluster}', perfplat, tx_events_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.tx_events_mv ON CLUSTER '{cluster}'
  TO perfplat.tx_events_local AS
SELECT service, id, txn, outcome, channel, cost_e4, ts, ttc_ms, ttc_edge_ms, received FROM perfplat.tx_in;

CREATE TABLE IF NOT EXISTS perfplat.tx_minute_local ON CLUSTER '{cluster}' (
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
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/tx_minute', '{replica}')
  PARTITION BY toYYYYMM(t) ORDER BY (service, t, channel, outcome, ttc_edge_ms);

CREATE TABLE IF NOT EXISTS perfplat.tx_minute ON CLUSTER '{cluster}' AS perfplat.tx_minute_local
  ENGINE = Distributed('{cluster}', perfplat, tx_minute_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.tx_minute_mv ON CLUSTER '{cluster}'
  TO perfplat.tx_minute_local AS
SELECT service, toStartOfMinute(ts) AS t, channel, outcome, ttc_edge_ms, count() AS events,
       sumIf(cost_e4, cost_e4 >= 0) AS cost_sum_e4, countIf(cost_e4 >= 0) AS costed,
       countIf(ttc_ms >= 0) AS ttc_n, sumIf(ttc_ms, ttc_ms >= 0) AS ttc_sum_ms
FROM perfplat.tx_in GROUP BY service, t, channel, outcome, ttc_edge_ms;

CREATE TABLE IF NOT EXISTS perfplat.tx_hour_local ON CLUSTER '{cluster}' (
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
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/tx_hour', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, channel, outcome, ttc_edge_ms);

CREATE TABLE IF NOT EXISTS perfplat.tx_hour ON CLUSTER '{cluster}' AS perfplat.tx_hour_local
  ENGINE = Distributed('{cluster}', perfplat, tx_hour_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.tx_hour_mv ON CLUSTER '{cluster}'
  TO perfplat.tx_hour_local AS
SELECT service, toStartOfHour(ts) AS t, channel, outcome, ttc_edge_ms, count() AS events,
       sumIf(cost_e4, cost_e4 >= 0) AS cost_sum_e4, countIf(cost_e4 >= 0) AS costed,
       countIf(ttc_ms >= 0) AS ttc_n, sumIf(ttc_ms, ttc_ms >= 0) AS ttc_sum_ms
FROM perfplat.tx_in GROUP BY service, t, channel, outcome, ttc_edge_ms;

CREATE TABLE IF NOT EXISTS perfplat.tx_day_local ON CLUSTER '{cluster}' (
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
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/tx_day', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, channel, outcome, ttc_edge_ms);

CREATE TABLE IF NOT EXISTS perfplat.tx_day ON CLUSTER '{cluster}' AS perfplat.tx_day_local
  ENGINE = Distributed('{cluster}', perfplat, tx_day_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.tx_day_mv ON CLUSTER '{cluster}'
  TO perfplat.tx_day_local AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, channel, outcome, ttc_edge_ms, count() AS events,
       sumIf(cost_e4, cost_e4 >= 0) AS cost_sum_e4, countIf(cost_e4 >= 0) AS costed,
       countIf(ttc_ms >= 0) AS ttc_n, sumIf(ttc_ms, ttc_ms >= 0) AS ttc_sum_ms
FROM perfplat.tx_in GROUP BY service, t, channel, outcome, ttc_edge_ms;

CREATE TABLE IF NOT EXISTS perfplat.rating_in ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    id String,
    rating UInt8,
    comment String,
    ts DateTime('UTC'),
    received DateTime('UTC')
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS perfplat.rating_events_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    id String,
    rating UInt8,
    comment String,
    ts DateTime('UTC'),
    received DateTime('UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/rating_events', '{replica}', received)
  PARTITION BY toYYYYMM(ts) ORDER BY (service, ts, id);

CREATE TABLE IF NOT EXISTS perfplat.rating_events ON CLUSTER '{cluster}' AS perfplat.rating_events_local
  ENGINE = Distributed('{cluster}', perfplat, rating_events_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.rating_events_mv ON CLUSTER '{cluster}'
  TO perfplat.rating_events_local AS
SELECT service, id, rating, comment, ts, received FROM perfplat.rating_in;

CREATE TABLE IF NOT EXISTS perfplat.rating_minute_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    t DateTime('UTC'),
    rating UInt8,
    responses UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/rating_minute', '{replica}')
  PARTITION BY toYYYYMM(t) ORDER BY (service, t, rating);

CREATE TABLE IF NOT EXISTS perfplat.rating_minute ON CLUSTER '{cluster}' AS perfplat.rating_minute_local
  ENGINE = Distributed('{cluster}', perfplat, rating_minute_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.rating_minute_mv ON CLUSTER '{cluster}'
  TO perfplat.rating_minute_local AS
SELECT service, toStartOfMinute(ts) AS t, rating, count() AS responses
FROM perfplat.rating_in GROUP BY service, t, rating;

CREATE TABLE IF NOT EXISTS perfplat.rating_hour_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    t DateTime('UTC'),
    rating UInt8,
    responses UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/rating_hour', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, rating);

CREATE TABLE IF NOT EXISTS perfplat.rating_hour ON CLUSTER '{cluster}' AS perfplat.rating_hour_local
  ENGINE = Distributed('{cluster}', perfplat, rating_hour_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.rating_hour_mv ON CLUSTER '{cluster}'
  TO perfplat.rating_hour_local AS
SELECT service, toStartOfHour(ts) AS t, rating, count() AS responses
FROM perfplat.rating_in GROUP BY service, t, rating;

CREATE TABLE IF NOT EXISTS perfplat.rating_day_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    t DateTime('UTC'),
    rating UInt8,
    responses UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/rating_day', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, rating);

CREATE TABLE IF NOT EXISTS perfplat.rating_day ON CLUSTER '{cluster}' AS perfplat.rating_day_local
  ENGINE = Distributed('{cluster}', perfplat, rating_day_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.rating_day_mv ON CLUSTER '{cluster}'
  TO perfplat.rating_day_local AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, rating, count() AS responses
FROM perfplat.rating_in GROUP BY service, t, rating;

-- 0004: alert state changes -----------------------------------------------------------------

CREATE TABLE IF NOT EXISTS perfplat.alert_events_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    rule String,
    seq UInt64,
    status LowCardinality(String),
    at_ms UInt64,
    doc String,
    webhook String,
    delivered UInt8,
    attempts UInt32,
    error String,
    version UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/alert_events', '{replica}', version)
  ORDER BY (service, rule, seq);

CREATE TABLE IF NOT EXISTS perfplat.alert_events ON CLUSTER '{cluster}' AS perfplat.alert_events_local
  ENGINE = Distributed('{cluster}', perfplat, alert_events_local, cityHash64(service));

-- 0005: cost posts (0005 drops 0003's costs, so it is not here) -----------------------------

CREATE TABLE IF NOT EXISTS perfplat.cost_posts_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    period LowCardinality(String),
    start DateTime('UTC'),
    channel LowCardinality(String),
    id String,
    amount_e4 Int64,
    received_ms UInt64
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/perfplat/cost_posts', '{replica}')
  ORDER BY (service, period, start, channel, id);

CREATE TABLE IF NOT EXISTS perfplat.cost_posts ON CLUSTER '{cluster}' AS perfplat.cost_posts_local
  ENGINE = Distributed('{cluster}', perfplat, cost_posts_local, cityHash64(service));

-- 0007: availability probes as sums per minute, hour and day (0007 drops 0003's probes) ------
-- The sink inserts probes into perfplat.probe_in on the node it is connected to.

CREATE TABLE IF NOT EXISTS perfplat.probe_in ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    id String,
    ts DateTime('UTC'),
    up UInt8,
    response_ms Int32,
    status UInt16,
    error String,
    edge_ms Int64
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS perfplat.probe_events_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    id String,
    ts DateTime('UTC'),
    up UInt8,
    response_ms Int32,
    status UInt16,
    error String
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/perfplat/probe_events', '{replica}')
  PARTITION BY toYYYYMM(ts) ORDER BY (service, ts, id);

CREATE TABLE IF NOT EXISTS perfplat.probe_events ON CLUSTER '{cluster}' AS perfplat.probe_events_local
  ENGINE = Distributed('{cluster}', perfplat, probe_events_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.probe_events_mv ON CLUSTER '{cluster}'
  TO perfplat.probe_events_local AS
SELECT service, id, ts, up, response_ms, status, error FROM perfplat.probe_in;

CREATE TABLE IF NOT EXISTS perfplat.probe_minute_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    t DateTime('UTC'),
    edge_ms Int64,
    probes UInt64,
    ups UInt64,
    rt_n UInt64,
    rt_sum_ms Int64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/probe_minute', '{replica}')
  PARTITION BY toYYYYMM(t) ORDER BY (service, t, edge_ms);

CREATE TABLE IF NOT EXISTS perfplat.probe_minute ON CLUSTER '{cluster}' AS perfplat.probe_minute_local
  ENGINE = Distributed('{cluster}', perfplat, probe_minute_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.probe_minute_mv ON CLUSTER '{cluster}'
  TO perfplat.probe_minute_local AS
SELECT service, toStartOfMinute(ts) AS t, edge_ms, count() AS probes, sum(toUInt64(up)) AS ups,
       countIf(response_ms >= 0) AS rt_n, sumIf(toInt64(response_ms), response_ms >= 0) AS rt_sum_ms
FROM perfplat.probe_in GROUP BY service, t, edge_ms;

CREATE TABLE IF NOT EXISTS perfplat.probe_hour_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    t DateTime('UTC'),
    edge_ms Int64,
    probes UInt64,
    ups UInt64,
    rt_n UInt64,
    rt_sum_ms Int64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/probe_hour', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, edge_ms);

CREATE TABLE IF NOT EXISTS perfplat.probe_hour ON CLUSTER '{cluster}' AS perfplat.probe_hour_local
  ENGINE = Distributed('{cluster}', perfplat, probe_hour_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.probe_hour_mv ON CLUSTER '{cluster}'
  TO perfplat.probe_hour_local AS
SELECT service, toStartOfHour(ts) AS t, edge_ms, count() AS probes, sum(toUInt64(up)) AS ups,
       countIf(response_ms >= 0) AS rt_n, sumIf(toInt64(response_ms), response_ms >= 0) AS rt_sum_ms
FROM perfplat.probe_in GROUP BY service, t, edge_ms;

CREATE TABLE IF NOT EXISTS perfplat.probe_day_local ON CLUSTER '{cluster}' (
    service LowCardinality(String),
    t DateTime('UTC'),
    edge_ms Int64,
    probes UInt64,
    ups UInt64,
    rt_n UInt64,
    rt_sum_ms Int64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/perfplat/probe_day', '{replica}')
  PARTITION BY toYear(t) ORDER BY (service, t, edge_ms);

CREATE TABLE IF NOT EXISTS perfplat.probe_day ON CLUSTER '{cluster}' AS perfplat.probe_day_local
  ENGINE = Distributed('{cluster}', perfplat, probe_day_local, cityHash64(service));

CREATE MATERIALIZED VIEW IF NOT EXISTS perfplat.probe_day_mv ON CLUSTER '{cluster}'
  TO perfplat.probe_day_local AS
SELECT service, toDateTime(toDate(ts), 'UTC') AS t, edge_ms, count() AS probes, sum(toUInt64(up)) AS ups,
       countIf(response_ms >= 0) AS rt_n, sumIf(toInt64(response_ms), response_ms >= 0) AS rt_sum_ms
FROM perfplat.probe_in GROUP BY service, t, edge_ms;

-- Gone since 0006: the journey set counts of the previous version of this file. The view first,
-- so no insert feeds a table being dropped.

DROP TABLE IF EXISTS perfplat.journey_counts_minute_mv ON CLUSTER '{cluster}';
DROP TABLE IF EXISTS perfplat.journey_counts_minute ON CLUSTER '{cluster}';
DROP TABLE IF EXISTS perfplat.journey_counts_minute_local ON CLUSTER '{cluster}';
