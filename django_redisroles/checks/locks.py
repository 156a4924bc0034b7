"""System checks of the locks role (see docs/checks.md)."""
