"""In-memory network topology and analyses (valve segments, burst isolation, routing)."""
