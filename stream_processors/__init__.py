"""The Faust app: topics, agents and the ClickHouse sinks."""
