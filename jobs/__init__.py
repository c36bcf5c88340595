"""Batch jobs over the history on Kafka: replay of decisions, state backfill, Parquet export and import."""
