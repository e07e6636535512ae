"""Shared training machinery: batching, optimizer, the fit loop with dev evaluation."""
