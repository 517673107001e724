"""Attempt counting for throttles, in the database so every process shares it."""
