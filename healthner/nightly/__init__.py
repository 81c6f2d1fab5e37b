"""The nightly side: the inbox reader, the tagger, shard batches, the Parquet warehouse, its checks
and queries. May import healthner.ensemble, healthner.model and healthner.corpus."""
