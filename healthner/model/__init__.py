"""One tagger: encoders, the BiLSTM-CRF network, losses, CRF inference, character features, training,
prediction and conlleval scoring. May import healthner.corpus and the config
(healthner.config, healthner.sections)."""
