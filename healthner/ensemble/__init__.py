"""Combining the trained members: the stacker's features and decoding, the stack stage, the shipped
folder and its loader, evaluation, plots and ablations. May import healthner.model and healthner.corpus."""
