"""The web dashboard: server-rendered pages (Jinja2) in English and Simplified Chinese, with a
little vanilla JavaScript that calls the JSON API under /api. See docs/dashboard.md."""
