"""Benchmarks: this project against a naive LangChain pipeline, in the same run (see README)."""
