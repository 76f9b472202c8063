"""Everything that writes events into Kafka."""
