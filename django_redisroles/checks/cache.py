"""System checks of the cache role (see docs/checks.md)."""
