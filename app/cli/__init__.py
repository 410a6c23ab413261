"""The `qiwang` command line: a root group (root.py), one module per family of commands, main.py."""
