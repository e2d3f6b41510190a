"""Sample workloads for the demo, the tests and the benchmarks (never on a proxy's path)."""
