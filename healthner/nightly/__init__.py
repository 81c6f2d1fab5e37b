"""The nightly side: the inbox reader, the tagger, shard batches, the Delta Lake warehouse, its checks,
publishing a night (three table commits and a night record), its upkeep, the DAG's task bodies and queries.
May import healthner.ensemble, healthner.model and healthner.corpus."""
