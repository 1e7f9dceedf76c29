"""The web face: the HTTP API and the status board's static files."""
