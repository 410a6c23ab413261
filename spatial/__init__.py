"""Database access: the embedded PostgreSQL cluster, engines, models and spatial queries."""
