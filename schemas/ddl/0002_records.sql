-- Data-set records (the backdrop-compatible write/read API). One dialect: ClickHouse 18.16 and 26.x.
--
-- Arbitrary record fields are queryable without a schema change: the records processor gives
-- each field of a data set one of 24 slot columns (s0..s23) in order of first appearance and
-- keeps that map in record_fields. A slot holds the field's value as compact JSON text
-- ('"abc"', '12', '1.5', 'true', 'null'); '' means the record has no such field. Fields past
-- the 24th are read from doc (the record's user fields as JSON) with visitParamExtractRaw.
--
-- Replacing a record by _id without FINAL: records is a CollapsingMergeTree. Replacing or
-- deleting writes a cancel row (sign -1, a copy of the current row) and, for a replacement, the
-- new row (sign +1); every query aggregates with sum(sign), so figures are exact before and
-- after merges. record_index (fed by a materialized view) answers "what is the current row of
-- this _id" for the processor. Emptying a data set (PUT []) starts a new epoch; reads only see
-- rows of the data set's latest epoch. record_ops (also fed by a view) remembers which write
-- operations are applied, so a replayed Kafka message changes nothing.

CREATE TABLE IF NOT EXISTS {db}.records (
    data_set String,
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
) ENGINE = CollapsingMergeTree(sign) PARTITION BY toYYYYMM(ts) ORDER BY (data_set, epoch, ts, id);

CREATE TABLE IF NOT EXISTS {db}.record_index (
    data_set String,
    epoch UInt64,
    id String,
    ts DateTime('UTC'),
    sign Int8,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (data_set, epoch, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.record_index_mv TO {db}.record_index AS
SELECT data_set, epoch, id, ts, sign, version FROM {db}.records;

CREATE TABLE IF NOT EXISTS {db}.record_ops (
    data_set String,
    op String,
    rows UInt64
) ENGINE = ReplacingMergeTree ORDER BY (data_set, op);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.record_ops_mv TO {db}.record_ops AS
SELECT data_set, op, count() AS rows FROM {db}.records GROUP BY data_set, op;

CREATE TABLE IF NOT EXISTS {db}.record_fields (
    data_set String,
    field String,
    slot UInt8
) ENGINE = ReplacingMergeTree ORDER BY (data_set, field);

CREATE TABLE IF NOT EXISTS {db}.data_set_epochs (
    data_set String,
    epoch UInt64,
    op String,
    at DateTime('UTC')
) ENGINE = ReplacingMergeTree ORDER BY (data_set, epoch);
