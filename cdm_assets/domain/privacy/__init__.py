"""Erasure and suppression of a person\x27s data."""
