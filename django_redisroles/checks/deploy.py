"""System checks of the deploy role (see docs/checks.md)."""
