"""Faregate: a self-hosted, OpenAI-compatible API gateway with exact prepaid billing."""

__version__ = "0.1.0"
