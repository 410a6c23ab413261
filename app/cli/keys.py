"""`qiwang keys …`: the keys of personal data at rest (accounts/personal_data.py, migration 0018).

    ./qiwang keys rotate [--batch ROWS]

A new SM4 key becomes the active one, every sealed ID number and phone number is re-encrypted
under it, and the old keys leave the keyring (setting personal_data_key_file), in this order,
because the keyring file is the only copy of the keys:

1. the rotated keyring (the old keys and the new one) is saved first, so no value sealed under the
   new key is ever in the database before its key is in the file;
2. every ``x_sealed`` of `PERSONAL_COLUMNS` is opened (so authenticated: an altered value stops
   the rotation) and sealed again under the new key, ROWS at a time, each batch its own
   transaction, as the owner (row-level security does not apply): an interruption leaves values
   under the old keys or the new one, all opened by the saved keyring; run the command again;
3. only when no sealed value names an old key any more (counted again) are the old keys dropped
   and the keyring saved once more.

Blind indexes stay as they are: the index key is not rotated (accounts.personal_data.Keyring).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from app.cli.common import ready_database, settings, shown_path
from app.cli.root import command_family

if TYPE_CHECKING:   # heavy modules are imported where used: --help answers at once (app/cli/common.py)
    import sqlalchemy as sa

    from accounts.personal_data import Keyring

keys = command_family("keys", "Keys of personal data at rest: rotate the SM4 key.")

DEFAULT_BATCH_ROWS = 10_000


def _old_values(conn: sa.Connection, table: str, column: str, active: bytes) -> int:
    """How many values of `table`.`column` (a sealed column) name a key other than `active`."""
    import sqlalchemy as sa

    return conn.execute(sa.text(
        f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL AND substring({column} FROM 2 FOR 4) <> :active"),
        {"active": active}).scalar_one()


def reencrypt_all(engine: sa.Engine, keyring: Keyring, batch_rows: int = DEFAULT_BATCH_ROWS,
                  echo: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Seal every sealed value of the database again under `keyring`'s active key.

    Parameters
    ----------
    engine
        The database, as its owner.
    keyring
        Holds every key a value is sealed under, the new one
        active (already saved: see the module docstring).
    batch_rows
        Values per transaction.
    echo
        Gets one line per column done.

    Returns
    -------
    dict
        ``table.column`` → values re-encrypted (those already under the active key are not written).

    Raises
    ------
    accounts.personal_data.DecryptionError
        A value that does not open (altered, or under a key the keyring lacks): nothing of its
        batch is written; the batches before it are, and open with `keyring`.
    """
    import sqlalchemy as sa

    from accounts.personal_data import PERSONAL_COLUMNS, associated_with, reencrypt, row_key, sealed_column

    active = bytes.fromhex(keyring.active.id)
    counts: dict[str, int] = {}
    for table, columns in PERSONAL_COLUMNS.items():
        key = row_key(table)
        for column in columns:
            sealed, where = sealed_column(column), associated_with(table, column)
            select = sa.text(f"SELECT {key}, {sealed} FROM {table} WHERE {sealed} IS NOT NULL "
                             f"AND substring({sealed} FROM 2 FOR 4) <> :active AND {key} > :after "
                             f"ORDER BY {key} LIMIT :rows")
            # only where the value is still the one read: a writer's newer value is left for the next pass
            update = sa.text(f"UPDATE {table} t SET {sealed} = u.new FROM unnest(CAST(:keys AS bigint[]), "
                             f"CAST(:old AS bytea[]), CAST(:new AS bytea[])) AS u(key, old, new) "
                             f"WHERE t.{key} = u.key AND t.{sealed} = u.old")
            done = 0
            while True:   # passes until no value names an old key (a concurrent writer may add some)
                after = -1
                while True:
                    with engine.begin() as conn:
                        rows = conn.execute(select, {"active": active, "after": after, "rows": batch_rows}).all()
                        if not rows:
                            break
                        new = [reencrypt(keyring, blob, associated=where) for _, blob in rows]
                        done += conn.execute(update, {"keys": [r[0] for r in rows], "old": [bytes(r[1]) for r in rows],
                                                      "new": new}).rowcount
                        after = rows[-1][0]
                with engine.connect() as conn:
                    if _old_values(conn, table, sealed, active) == 0:
                        break
            counts[where] = done
            echo(f"{where}: {done:,} values re-encrypted")
    return counts


@keys.command("rotate")
@click.option("--batch", "batch_rows", type=click.IntRange(1, 1_000_000), default=DEFAULT_BATCH_ROWS,
              show_default=True, help="Values re-encrypted per transaction.")
def keys_rotate(batch_rows: int) -> None:
    """Seal every ID number and phone number under a new SM4 key, then drop the old keys.

    The keyring file (setting personal_data_key_file) is saved with the new key before anything
    is sealed under it, and loses the old keys only once no value needs them. Interrupted, it can
    be run again: every value opens with the keyring as saved.
    """
    from accounts.personal_data import PERSONAL_COLUMNS, Keyring, sealed_column
    from core.errors import QiwangError
    from db.engine import get_engine

    path = settings().personal_data_key_file
    engine = get_engine(ready_database(owner=True))
    before = Keyring.load(path)   # a missing keyring is an error here: there would be nothing to rotate to
    rotated = before.rotated()
    rotated.save(path)            # 1. the new key is in the file before any value is sealed under it
    click.echo(f"keyring {shown_path(path)}: new key {rotated.active.id} "
               f"(was {', '.join(k.id for k in before.keys)})")
    counts = reencrypt_all(engine, rotated, batch_rows, click.echo)   # 2.
    active = bytes.fromhex(rotated.active.id)
    with engine.connect() as conn:
        left = sum(_old_values(conn, table, sealed_column(column), active)
                   for table, columns in PERSONAL_COLUMNS.items() for column in columns)
    if left:
        raise QiwangError(f"{left:,} values are still sealed under an old key: the keyring keeps every key; "
                          "run ./qiwang keys rotate again")
    rotated.without_old_keys().save(path)   # 3.
    click.echo(f"{sum(counts.values()):,} values re-encrypted in {len(counts)} columns; "
               f"old keys dropped: {', '.join(k.id for k in before.keys)}; active key: {rotated.active.id}")
