"""Helpers of ``benchmarks/bench_service.py``: the raw baseline app, the scratch
database, the load generators and the report."""
