"""Incident codes from a sequence.

Codes were `count(*) + 1` over the incident table: two dispatchers saving at the same moment got
the same code (and the second save failed on the unique key), and a deleted incident made the
next code collide with an existing one. `incident_code_seq` hands out the numbers now; it starts
past the highest SG number in use. The format stays SG and six digits (more beyond 999999).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The application role may draw numbers through the owner's default privileges (0011).
    op.execute("""
        CREATE SEQUENCE incident_code_seq OWNED BY incident.code;
        SELECT setval('incident_code_seq', coalesce(max(substring(code FROM '^SG([0-9]+)$')::bigint), 0) + 1, false)
        FROM incident;
        COMMENT ON SEQUENCE incident_code_seq IS '事故编号序号: SG 加 6 位数字 (并发保存不重号)';
    """)


def downgrade() -> None:
    op.execute("DROP SEQUENCE incident_code_seq")
