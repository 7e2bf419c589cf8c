"""Grounded question answering over a news article corpus."""
