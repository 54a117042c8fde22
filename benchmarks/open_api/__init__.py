"""Helpers of ``benchmarks/bench_open_api.py``: the served app and the wrk script."""
