"""Prices and costs: pure functions over integers."""
