"""Alembic environment: runs the ordered, hand-written migrations in migrations/versions.

The schema is written as SQL in the migrations themselves (TEKSI style): every table and column
carries a COMMENT with its Chinese name, so QGIS and the OGC API can show it.
"""
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def _url() -> str:
    explicit = config.get_main_option("sqlalchemy.url")
    if explicit:
        return explicit
    from spatial.db import database_url  # the plain `alembic` command: DATABASE_URL or ./var cluster

    return database_url()


url = _url()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
