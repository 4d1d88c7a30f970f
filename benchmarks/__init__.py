"""Benchmarks: scripts that print figures and same-run ratios, never assertions.

Run each from the repository root as ``python -m benchmarks.NAME [args]`` (``--help`` lists its
arguments).
"""
