"""The demo city (Anshan): a reproducible generated network with every kind of feature."""
