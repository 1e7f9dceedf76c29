"""Tools beside the product: the simulated post, the demo, and the private servers that
the tests, the demo and the benchmarks run."""
