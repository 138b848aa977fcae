"""Benchmarks: each `bench_<name>.py` exposes run(settings) -> dict and runs as `python -m bench.bench_<name>`."""
