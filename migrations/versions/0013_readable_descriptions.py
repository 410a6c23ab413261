"""Table descriptions that read as sentences: "(000 appendix A.1 #4)" becomes
"(辽宁智慧燃气建设手册 附录A.1 第4项)".

The table comments are what QGIS, the OGC API and its HTML pages show as a layer's description;
an internal file number of the seeds means nothing to a user.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _rewrite(pattern: str, replacement: str) -> str:
    return f"""
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT c.oid::regclass AS rel, d.description
                       FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
                      WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0
                        AND c.relnamespace = 'public'::regnamespace AND d.description ~ '{pattern}'
            LOOP
                EXECUTE format('COMMENT ON TABLE %s IS %L', r.rel,
                               regexp_replace(r.description, '{pattern}', '{replacement}', 'g'));
            END LOOP;
        END $$;
    """


def upgrade() -> None:
    op.execute(_rewrite(r"\(000 appendix ([A-E](\.[0-9]+)?) #([0-9]+)\)", r"(辽宁智慧燃气建设手册 附录\1 第\3项)"))


def downgrade() -> None:
    op.execute(_rewrite(r"\(辽宁智慧燃气建设手册 附录([A-E](\.[0-9]+)?) 第([0-9]+)项\)", r"(000 appendix \1 #\3)"))
