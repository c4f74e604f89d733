"""Benchmarks behind `pixwizard bench ...`: each prints JSON figures (no timed tests)."""
