"""Users and organizations."""
