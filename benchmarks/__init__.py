"""Benchmarks of the healthner package (`make bench`): they drive the installed package, never ship with it."""
