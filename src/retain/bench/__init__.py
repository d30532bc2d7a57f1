"""The published benchmarks: each runs methods side by side and writes a table, JSON and PNG."""
