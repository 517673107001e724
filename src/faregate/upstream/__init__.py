"""OpenAI-compatible upstream providers over one shared, pooled HTTP client (aiohttp)."""
