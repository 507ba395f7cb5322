"""Benchmarks' low-level pieces: the REST bench client (the rest-bench driver's) and the
py-spy profiler. The `harness bench` commands are ``harness.bench_cli``, outside this package,
so that the runner and the drivers can import these without an import cycle."""
