"""Database plumbing: the embedded PostgreSQL cluster, engines, the migration runner, bulk loads,
and the one introspection of the catalog."""
