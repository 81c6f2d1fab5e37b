"""healthner: Traditional-Chinese healthcare named-entity recognition, batch pipeline."""
