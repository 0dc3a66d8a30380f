"""Benchmarks: each measures ours side by side with a baseline, in one run, on one broker.

`python -m bench` (or `make bench`) starts one local Kafka and one Redis on free ports, runs
every `bench/bench_*.py` module's `run(env)` and prints one table: measure, baseline, ours,
ratio and the target. The machines are shared and noisy, so only ratios measured in the same
run are compared; absolute figures are printed for context. Results also go to
bench/results/latest.json.
"""
