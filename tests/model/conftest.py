"""Fixtures of tests/tiny_models.py: tiny params over real sentences, one torch thread per test."""

from tests.tiny_models import _one_thread, encoder_params, real_sentences, tiny_params  # noqa: F401
