"""OGC API Processes jobs: the table pygeoapi's PostgreSQL job manager reads and writes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""
from alembic import op

from migrations.fragments import comments

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The columns are those of pygeoapi 0.21's job metadata (process/manager/base.py), by name:
    # the manager inserts and updates them as given. Its times arrive as ISO 8601 UTC strings.
    op.execute(
        f"""
        CREATE TABLE jobs (
            identifier  text PRIMARY KEY,
            type        text NOT NULL DEFAULT 'process',
            process_id  text NOT NULL,
            status      text NOT NULL CHECK (status IN ('accepted', 'running', 'successful', 'failed',
                                                        'dismissed')),
            message     text,
            progress    integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
            mimetype    text,
            location    text,
            created     timestamptz NOT NULL DEFAULT now(),
            started     timestamptz,
            updated     timestamptz,
            finished    timestamptz
        );
        CREATE INDEX jobs_started ON jobs (started DESC);
        {comments("jobs", "分析任务 (OGC API Processes 异步/同步执行记录)", {
            "identifier": "任务编号 (UUID)", "type": "类型 (process)", "process_id": "分析过程",
            "status": "状态 accepted 已受理/running 执行中/successful 成功/failed 失败/dismissed 已取消",
            "message": "状态说明或错误信息", "progress": "进度 (%)", "mimetype": "结果格式",
            "location": "结果文件路径", "created": "创建时间", "started": "开始时间",
            "updated": "更新时间", "finished": "结束时间"})}
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE jobs;")
