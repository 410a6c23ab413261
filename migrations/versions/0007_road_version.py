"""A version counter for the road layer, so the routing graph knows when to rebuild.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE road_version (
            singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            version     bigint NOT NULL,
            changed_at  timestamptz NOT NULL
        );
        INSERT INTO road_version VALUES (true, 1, now());
        COMMENT ON TABLE road_version IS '道路版本: bumped by every statement that writes roads (routing graph cache)';
        CREATE FUNCTION bump_road_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE road_version SET version = version + 1, changed_at = now();
            RETURN NULL;
        END $$;
        CREATE TRIGGER road_bumps_road_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road
            FOR EACH STATEMENT EXECUTE FUNCTION bump_road_version();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER road_bumps_road_version ON road; DROP FUNCTION bump_road_version(); "
               "DROP TABLE road_version;")
