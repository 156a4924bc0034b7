"""Subcommands of ``manage.py redisroles`` (one module each)."""
