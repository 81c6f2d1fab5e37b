"""The nightly side: the inbox reader, the tagger, shard batches, the Parquet warehouse, its checks,
publishing a night (one pointer switch per day), the DAG's task bodies and queries.
May import healthner.ensemble, healthner.model and healthner.corpus."""
