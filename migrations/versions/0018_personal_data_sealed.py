"""Personal data sealed at rest: ID numbers and phone numbers masked in place, SM4-sealed beside.

For every column ``x`` below (issue 18, item 6):

- ``x`` keeps only the mask (138****0000, 2103**********1234), so every reader that read ``x``
  (published views, exports, a direct PostgreSQL login) reads the mask without a change;
- ``x_sealed bytea``: the value sealed with SM4-GCM, authenticated data ``table.x``
  (accounts/personal_data.py, format version 1), under the deployment's keyring, the file of the
  setting personal_data_key_file (created here when missing), never in the database;
- ``x_index bytea``: its HMAC-SM3 blind index, indexed, for exact look-up;
- CHECK ``x_is_masked``: no run of five digits in ``x``, so no path (an INSERT of an old client, a
  direct login with a write grant, a forgotten writer) can store a clear number; CHECK
  ``x_is_sealed``: ``x`` and ``x_sealed`` are null together.

The rows already there are sealed here, in Python (read the key and ``x``, write the mask, the
sealed value and the index), batch by batch. The GB 11643 CHECK id_number_is_gb11643 goes: the
database cannot check a sealed value; the rule stays in core/codes.py (ID_NUMBER, marked
checked_in_database = false) and is checked before sealing (accounts.personal_data.seal_frame).

Published views (0011, 0014) are not remade: a view is frozen to the columns its table had, so
the new columns are not published, and the views' masks of ``x`` give the same mask again.
Role qiwang_pii (0016) may read, besides customer_personal, the sealed columns of the other
tables with their feature's code, key and enterprise, row-level security deciding which rows:
what GET /api/pii/<collection>/<code> reads as the caller.

Downgrade opens every sealed value again (the keyring is needed) and puts it back in ``x``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accounts.personal_data import Keyring, decrypt, load_keyring, seal_values

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# Frozen copy of accounts.personal_data.PERSONAL_COLUMNS as this migration seals them (a migration
# is history: a column added there later comes with a migration of its own).
# tests/test_personal_data_at_rest.py checks that the two agree while no later migration adds one.
COLUMNS: dict[str, dict[str, str]] = {
    "customer_personal": {"id_number": "id_number", "contact_phone": "phone", "meter_reader_phone": "phone"},
    "valve": {"responsible_phone": "phone"},
    "regulator": {"responsible_phone": "phone"},
    "sentry": {"responsible_phone": "phone"},
    "device": {"responsible_phone": "phone"},
    "hazard": {"inspector_phone": "phone"},
    "inspection": {"inspector_phone": "phone"},
    "crew_base": {"phone": "phone"},
}
KEYS = {"customer_personal": "customer_id"}   # primary key; `id` for the others
KIND_ZH = {"id_number": "身份证号", "phone": "电话"}
BATCH_ROWS = 20_000
GB11643 = "id_number ~ '^[1-9][0-9]{16}[0-9X]$'"   # 0004's CHECK, restored by the downgrade


def _key(table: str) -> str:
    return KEYS.get(table, "id")


def _batches(conn: sa.Connection, table: str, columns: list[str]) -> list[list[sa.Row]]:
    rows = conn.execute(sa.text(
        f"SELECT {_key(table)}, {', '.join(columns)} FROM {table} ORDER BY {_key(table)}")).all()
    return [rows[i:i + BATCH_ROWS] for i in range(0, len(rows), BATCH_ROWS)]


def _seal_rows(conn: sa.Connection, keyring: Keyring, table: str, columns: dict[str, str]) -> None:
    """Every row of `table`: each column masked, sealed and indexed, one UPDATE per batch."""
    names = list(columns)
    assignments = ", ".join(f"{c} = u.{c}, {c}_sealed = u.{c}_sealed, {c}_index = u.{c}_index" for c in names)
    arrays = ", ".join(f"CAST(:{c} AS text[]), CAST(:{c}_sealed AS bytea[]), CAST(:{c}_index AS bytea[])"
                       for c in names)
    aliases = ", ".join(f"{c}, {c}_sealed, {c}_index" for c in names)
    update = sa.text(f"UPDATE {table} t SET {assignments} FROM unnest(CAST(:keys AS bigint[]), {arrays}) "
                     f"AS u(key, {aliases}) WHERE t.{_key(table)} = u.key")
    for batch in _batches(conn, table, names):
        params: dict[str, list] = {"keys": [row[0] for row in batch]}
        for position, (column, kind) in enumerate(columns.items(), 1):
            masks, sealed, indexes = seal_values(keyring, [row[position] for row in batch], kind,
                                                 associated=f"{table}.{column}")
            params |= {column: masks, f"{column}_sealed": sealed, f"{column}_index": indexes}
        conn.execute(update, params)


def _open_rows(conn: sa.Connection, keyring: Keyring, table: str, columns: list[str]) -> None:
    """Every sealed value of `table` opened and written back in clear (the downgrade)."""
    sets = ", ".join(f"{c} = u.{c}" for c in columns)
    arrays = ", ".join(f"CAST(:{c} AS text[])" for c in columns)
    update = sa.text(f"UPDATE {table} t SET {sets} FROM unnest(CAST(:keys AS bigint[]), {arrays}) "
                     f"AS u(key, {', '.join(columns)}) WHERE t.{_key(table)} = u.key")
    for batch in _batches(conn, table, [f"{c}_sealed" for c in columns]):
        params: dict[str, list] = {"keys": [row[0] for row in batch]}
        for position, column in enumerate(columns, 1):
            params[column] = [None if row[position] is None else
                              decrypt(keyring, row[position], associated=f"{table}.{column}") for row in batch]
        conn.execute(update, params)


def upgrade() -> None:
    conn = op.get_bind()
    keyring = load_keyring(create=True)
    op.execute("ALTER TABLE customer_personal DROP CONSTRAINT id_number_is_gb11643")
    for table, columns in COLUMNS.items():
        added = []
        for column, kind in columns.items():
            comment = conn.execute(sa.text("SELECT col_description(CAST(:t AS regclass), attnum) FROM pg_attribute "
                                           "WHERE attrelid = CAST(:t AS regclass) AND attname = :c"),
                                   {"t": table, "c": column}).scalar() or KIND_ZH[kind]
            added.append(f"""
                ALTER TABLE {table} ADD COLUMN {column}_sealed bytea, ADD COLUMN {column}_index bytea;
                COMMENT ON COLUMN {table}.{column}_sealed IS '{comment} (密文: SM4-GCM, 密钥在数据库外)';
                COMMENT ON COLUMN {table}.{column}_index IS '{comment} (盲索引: HMAC-SM3, 精确查找)';""")
        op.execute("\n".join(added))
        _seal_rows(conn, keyring, table, columns)
        op.execute("\n".join(f"""
            ALTER TABLE {table}
                ADD CONSTRAINT {column}_is_masked CHECK ({column} IS NULL OR {column} !~ '[0-9]{{5}}'),
                ADD CONSTRAINT {column}_is_sealed CHECK (({column} IS NULL) = ({column}_sealed IS NULL));
            CREATE INDEX {table}_{column}_index ON {table} ({column}_index);"""
                             for column in columns))
        if table != "customer_personal":   # qiwang_pii reads customer_personal whole already (0016)
            readable = ", ".join([_key(table), "code", "enterprise_code", *(f"{c}_sealed" for c in columns)])
            op.execute(f"GRANT SELECT ({readable}) ON {table} TO qiwang_pii")


def downgrade() -> None:
    conn = op.get_bind()
    sealed = conn.execute(sa.text(" UNION ALL ".join(
        f"SELECT count(*) FROM {table} WHERE " + " OR ".join(f"{c}_sealed IS NOT NULL" for c in columns)
        for table, columns in COLUMNS.items()))).scalars().all()
    keyring = load_keyring(create=False) if any(sealed) else None
    for table, columns in COLUMNS.items():
        if table != "customer_personal":
            readable = ", ".join([_key(table), "code", "enterprise_code", *(f"{c}_sealed" for c in columns)])
            op.execute(f"REVOKE SELECT ({readable}) ON {table} FROM qiwang_pii")
        op.execute("\n".join(f"""
            ALTER TABLE {table} DROP CONSTRAINT {column}_is_masked, DROP CONSTRAINT {column}_is_sealed;"""
                             for column in columns))
        if keyring is not None:
            _open_rows(conn, keyring, table, list(columns))
        op.execute("\n".join(f"ALTER TABLE {table} DROP COLUMN {column}_sealed, DROP COLUMN {column}_index;"
                             for column in columns))   # their indexes go with them
    op.execute(f"ALTER TABLE customer_personal ADD CONSTRAINT id_number_is_gb11643 CHECK ({GB11643})")
