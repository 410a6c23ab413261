"""`python -m app`: the qiwang CLI with every command group registered (./qiwang runs this)."""
from app.cli import main

main()
