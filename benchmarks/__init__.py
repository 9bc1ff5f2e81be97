"""Benchmarks and experiment scripts (run as ``python -m benchmarks.NAME``); not part of the test suite."""
