"""Qiwang (气网) application layer: Flask app factory, web pages and the command line."""
