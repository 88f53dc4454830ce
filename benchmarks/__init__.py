"""Benchmarks of Platform Monitor against the engines a user would pick instead.

Run them with `python -m benchmarks.run` (see docs/benchmarks.md). They print ratios against a
baseline measured in the same run and never fail on a duration.
"""
