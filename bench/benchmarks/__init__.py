"""asv benchmarks of fastxent (see ../README.md)."""
