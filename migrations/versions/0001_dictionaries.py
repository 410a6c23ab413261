"""Extensions, code domains and the 42 dictionaries of appendix E (000 manual).

Each dictionary becomes its own code table `dict.<name>(code, label_zh)` so that coded columns can
reference it with a plain foreign key; `dict.dictionary` is the catalogue (42 rows, 296 codes in all).
The facts come from data/dictionaries.csv (a copy of shared/reference/dictionaries.csv).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import csv
from itertools import groupby
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DICTIONARIES_CSV = Path(__file__).resolve().parents[2] / "data" / "dictionaries.csv"


def _read_dictionaries() -> list[tuple[str, str, str, list[tuple[int, str]]]]:
    """(section, name, title_zh, [(code, label_zh), …]) in file order."""
    with DICTIONARIES_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for (section, name, title), group in groupby(
        rows, key=lambda r: (r["section"], r["dictionary"], r["dictionary_title_zh"])
    ):
        out.append((section, name, title, [(int(r["code"]), r["label_zh"]) for r in group]))
    return out


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE SCHEMA dict")
    op.execute("COMMENT ON SCHEMA dict IS '数据字典 code tables: appendix E of the Liaoning smart-gas manual (000)'")

    # Codes that every business table carries (000 2.1.7): checked once, here, as domains.
    op.execute(
        """
        CREATE DOMAIN t_admin_code AS text
            CONSTRAINT admin_code_is_6_digits CHECK (VALUE ~ '^[1-9][0-9]{5}$');
        COMMENT ON DOMAIN t_admin_code IS '行政区划代码: 6-digit division code (GB/T 2260)';
        CREATE DOMAIN t_enterprise_code AS text
            CONSTRAINT enterprise_code_is_division_plus_sequence
            CHECK (VALUE ~ '^[1-9][0-9]{5}[0-9]{4}$' AND right(VALUE, 4) <> '0000');
        COMMENT ON DOMAIN t_enterprise_code IS
            '企业唯一编码: 6-digit county-level division code + 4-digit sequence from 0001 (000 2.1.7)';
        """
    )

    op.execute(
        """
        CREATE TABLE dict.dictionary (
            name      text PRIMARY KEY,
            section   text NOT NULL UNIQUE,
            title_zh  text NOT NULL
        );
        COMMENT ON TABLE dict.dictionary IS '数据字典目录: the 42 code lists of appendix E';
        """
    )
    catalogue = sa.table("dictionary", sa.column("name"), sa.column("section"), sa.column("title_zh"), schema="dict")
    dictionaries = _read_dictionaries()
    for section, name, title, codes in dictionaries:
        op.execute(
            f"""
            CREATE TABLE dict.{name} (
                code      smallint PRIMARY KEY,
                label_zh  text NOT NULL UNIQUE
            );
            COMMENT ON TABLE dict.{name} IS '{title} ({section})';
            """
        )
        code_table = sa.table(name, sa.column("code"), sa.column("label_zh"), schema="dict")
        op.bulk_insert(code_table, [{"code": c, "label_zh": label} for c, label in codes])
    op.bulk_insert(catalogue, [{"name": n, "section": s, "title_zh": t} for s, n, t, _ in dictionaries])

    # One view over all lists, for look-ups by label (imports accept codes or Chinese labels).
    union = "\nUNION ALL ".join(
        f"SELECT '{name}'::text AS dictionary, code, label_zh FROM dict.{name}" for _, name, _, _ in dictionaries
    )
    op.execute(f"CREATE VIEW dict.code AS {union}")


def downgrade() -> None:
    op.execute("DROP SCHEMA dict CASCADE")
    op.execute("DROP DOMAIN t_enterprise_code")
    op.execute("DROP DOMAIN t_admin_code")
