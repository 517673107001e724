"""Engines, the schema, migrations, and the database clock."""
