"""The built-in development model: a deterministic, OpenAI-compatible fake model server."""

from faregate.devmodel.app import create_devmodel_app

__all__ = ["create_devmodel_app"]
