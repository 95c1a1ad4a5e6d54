"""The servicegroup benchmark suite (run it with ``benchmarks/run.py``).

Every number is measured on real servers started by the run itself, on
loopback, and set against baselines measured in the same run on the same
servers, so ratios stay meaningful from one machine to the next.
"""
