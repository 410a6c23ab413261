"""System alarms: the ingest's own failures (writer, MQTT client, mosquitto) as alarms.

A part of the ingest that dies is restarted by its supervisor; the operator must still learn of it,
on the alarm panel and in `./qiwang alarm list`, with the same handling record as any other alarm.
Such an alarm has device type `system`, device code `qiwang-ingest`, the part as its measure, level
7 (fault) and no location; one is raised for each enterprise the ingest serves, so that each
enterprise's dispatchers (and, later, their scopes) see it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
from alembic import op

from migrations.fragments import comments

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE alarm DROP CONSTRAINT alarm_device_type_check,
            ADD CONSTRAINT alarm_device_type_check
                CHECK (device_type IN ('sentry', 'rtu', 'alarm', 'meter', 'system'));
        {comments("alarm", "报警 (压力/浓度/系统故障), 闭环处置 raised → acknowledged → dispatched → resolved → closed", {
            "device_type": "设备类型 sentry/rtu/alarm/meter; system: 采集服务自身 (measure 为故障部件)"})}
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM alarm_event WHERE alarm_id IN (SELECT id FROM alarm WHERE device_type = 'system');
        DELETE FROM alarm WHERE device_type = 'system';
        ALTER TABLE alarm DROP CONSTRAINT alarm_device_type_check,
            ADD CONSTRAINT alarm_device_type_check CHECK (device_type IN ('sentry', 'rtu', 'alarm', 'meter'));
        """
    )
