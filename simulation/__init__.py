"""Realistic synthetic bank traffic for the demo and the benchmarks (never for production)."""
