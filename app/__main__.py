"""`python -m app`: the qiwang CLI with every command group registered (./qiwang runs this)."""
from app.cli.main import main

# Guarded: the ingest's MQTT client process (spawned) imports this module again.
if __name__ == "__main__":
    main()
