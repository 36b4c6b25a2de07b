"""Benchmarks behind `skinkeras bench NAME`: one module per benchmark (see skinkeras.cli.bench)."""
