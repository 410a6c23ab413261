"""The bottom layer: errors, settings, codes, CRS and text rules. Imports nothing of the project."""
