"""Repository tools run from the checkout (`python scripts/NAME.py`), importable by the tests as `scripts.NAME`."""
