"""Quarantine replay: mark a quarantined message once it has been sent through the ingest again.

`./qiwang quarantine replay` republishes quarantined MQTT messages (typically those of a device that
reported before it was registered) and stamps `replayed_at` when the broker has taken each one. The
row stays: the quarantine is a record of what arrived and why it was refused, not a queue.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""
from alembic import op

from migrations.fragments import comments

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE reading_quarantine ADD COLUMN replayed_at timestamptz;
        CREATE INDEX reading_quarantine_waiting ON reading_quarantine (device_code, id) WHERE replayed_at IS NULL;
        {comments("reading_quarantine", "隔离的监测数据: 无法入库的原始报文及原因", {
            "replayed_at": "重放时间 (空: 未重放; 重放后仍不合格的报文会以新原因再次隔离)"})}
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX reading_quarantine_waiting; ALTER TABLE reading_quarantine DROP COLUMN replayed_at;")
