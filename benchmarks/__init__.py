"""Side-by-side benchmarks against the peer libraries (results in docs/benchmarks.md)."""
