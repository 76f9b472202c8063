"""Event schemas (versioned), ClickHouse DDL and migrations, golden payloads."""
