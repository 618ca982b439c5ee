"""Benchmarks: each script prints its figures and a ratio against a baseline measured on the
same machine in the same run, and writes them to bench/results/<name>.json."""
