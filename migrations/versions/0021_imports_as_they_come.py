"""Real networks in as they come (issue 19): what the seeds do not require may be unknown, every
import is recorded, and an import bumps the network version once.

- `pipe.laying_type` (敷设方式) becomes nullable: appendix A.1 #4 of the 000 manual lists the
  mandatory fields of 管道数字化档案 and 敷设方式 is not among them, so a file with exactly those
  fields was refused. NULL means "not recorded"; the network model does not need it. The
  pressure class stays mandatory: the network model needs it (a node's class, a regulator joins
  two classes, telemetry thresholds); a file without one gives it with a mapping default or
  `--set pipes.pressure_class=…`.
- `import_log`: one row per import written (`./qiwang import-log`): the file's name and SHA-256,
  the account, the mode, counts per layer, the CRS declared and used with the transformation and
  its accuracy, and the mapping used. Only the owner (the CLI) writes and reads it.
- `bump_network_version()` bumps once per transaction instead of once per statement: an import
  of several layers, or a replace that deletes and inserts, is one new version of the network.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE pipe ALTER COLUMN laying_type DROP NOT NULL;

        CREATE TABLE import_log (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            imported_at     timestamptz NOT NULL DEFAULT now(),
            account         text NOT NULL,
            file_name       text NOT NULL,
            sha256          text NOT NULL CHECK (length(sha256) = 64 AND sha256 = lower(sha256)),
            mode            text NOT NULL CHECK (mode IN ('insert', 'update', 'upsert', 'replace-enterprise')),
            enterprises     text[] NOT NULL,
            counts          jsonb NOT NULL,
            crs             jsonb NOT NULL,
            mapping         jsonb NOT NULL,
            network_version bigint
        );
        COMMENT ON TABLE import_log IS '导入记录: one row per import written (./qiwang import-log)';
        COMMENT ON COLUMN import_log.counts IS
            'per layer: {"table", "inserted", "updated", "deleted"}';
        COMMENT ON COLUMN import_log.crs IS
            'per layer: declared CRS, CRS used, transformation, accuracy in metres (null: unknown)';
        COMMENT ON COLUMN import_log.mapping IS
            'the mapping file laid over the defaults (its text), and the --set values';

        ALTER TABLE network_version ADD COLUMN bumped_in xid8;
        CREATE OR REPLACE FUNCTION bump_network_version() RETURNS trigger LANGUAGE plpgsql
            SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
            UPDATE network_version SET version = version + 1, changed_at = now(), bumped_in = pg_current_xact_id()
                WHERE bumped_in IS DISTINCT FROM pg_current_xact_id();
            RETURN NULL;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION bump_network_version() RETURNS trigger LANGUAGE plpgsql
            SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
            UPDATE network_version SET version = version + 1, changed_at = now();
            RETURN NULL;
        END $$;
        ALTER TABLE network_version DROP COLUMN bumped_in;
        DROP TABLE import_log;
        UPDATE pipe SET laying_type = 1 WHERE laying_type IS NULL;
        ALTER TABLE pipe ALTER COLUMN laying_type SET NOT NULL;
        """
    )
