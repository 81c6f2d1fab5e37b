"""The corpus: readers of each file format, labels, validation (GX suites), the split, vocabularies,
windows and the lexicon. May import only healthner.config and
healthner.sections."""
