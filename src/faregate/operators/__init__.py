"""Operators: the people who run this Faregate (roles admin and support), separate from user
accounts. Password (argon2id) plus TOTP sign-in, recovery codes, operator sessions."""
