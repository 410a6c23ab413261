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
    from db.engine import owner_url  # the plain `alembic` command: DATABASE_URL or ./var cluster

    return owner_url()


url = _url()


# Objects belong to qiwang_owner (migration 0011), whoever runs the migrations: once a database has
# the owner role set up, every migration runs as it. Before that, 0011 hands what exists over and
# switches the session to it.
ACT_AS_OWNER = """
    SELECT CASE WHEN to_regrole('qiwang_owner') IS NULL THEN false
                ELSE pg_has_role(current_user, 'qiwang_owner', 'MEMBER')
                     AND has_database_privilege('qiwang_owner', current_database(), 'CREATE') END
"""


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.exec_driver_sql(ACT_AS_OWNER).scalar():
            connection.exec_driver_sql("SET ROLE qiwang_owner")
        connection.commit()
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
