"""System checks of the sessions role (see docs/checks.md)."""
