"""The demo's dashboard: the five roles, their Redis servers and their failure modes, live."""
