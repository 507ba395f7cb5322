"""Benchmarks: the REST bench client, and `harness bench` aliases of the shipped bench scenarios."""
