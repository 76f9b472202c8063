-- Alerts (pipeline/alerts.py): every change of an alert rule's state, one row per change. One
-- dialect: ClickHouse 18.16 and 26.x.
--
-- seq numbers a rule's changes 1, 2, ...; status is ok (the rule's first state, never sent),
-- firing or resolved (notifications, POSTed to webhook). A rule's current state is its row with
-- the greatest seq. Delivering a notification writes the same row again with delivered,
-- attempts and error updated and a greater version (seq << 32 | delivered << 31 | attempts), so
-- the newest copy wins: read with argMax(col, version) ... GROUP BY, exact before and after
-- merges. Two processes that evaluate the same change write the same (service, rule, seq): it
-- counts once. doc is the notification's JSON as the webhook receives it. Few rows (changes
-- only), kept unpartitioned: a rule firing for months keeps its state.

CREATE TABLE IF NOT EXISTS {db}.alert_events (
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
) ENGINE = ReplacingMergeTree(version) ORDER BY (service, rule, seq);
