"""The dashboard's JSON API under /api (FastAPI), with cookie sessions for browsers."""
