"""System checks of the ratelimit role (see docs/checks.md)."""
