"""`python -m healthner.cli ...`: the `healthner` command."""

from healthner.cli import app

app()
