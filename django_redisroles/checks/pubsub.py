"""System checks of the pubsub role (see docs/checks.md)."""
