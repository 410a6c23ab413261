"""Incidents say who saved them and who last changed their state, as the database knows it (issue 18, item 4).

``created_by`` and ``state_changed_by`` / ``state_changed_at`` are set by a
BEFORE trigger from the role the transaction acts as (audit.actor_of, migration 0017: an
account's role is its account; the CLI's owner its named operator), never from what a client
sends: an INSERT or UPDATE giving other values has them replaced, and an UPDATE cannot rewrite
who saved the incident. Incidents saved before this migration take the actor of their insert in
the audit log, else ``unknown (before 0019)``.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

OWNER = "qiwang_owner"
UNKNOWN = "unknown (before 0019)"


def upgrade() -> None:
    op.execute(f"""
        ALTER TABLE incident
            ADD COLUMN created_by text,
            ADD COLUMN state_changed_by text,
            ADD COLUMN state_changed_at timestamptz;
        UPDATE incident i SET created_by = coalesce(
                   (SELECT actor FROM audit.log
                     WHERE table_name = 'incident' AND action = 'insert' AND feature_code = i.code
                     ORDER BY id LIMIT 1), '{UNKNOWN}');
        UPDATE incident SET state_changed_by = created_by, state_changed_at = updated_at;
        ALTER TABLE incident
            ALTER COLUMN created_by SET NOT NULL,
            ALTER COLUMN state_changed_by SET NOT NULL,
            ALTER COLUMN state_changed_at SET NOT NULL;
        COMMENT ON COLUMN incident.created_by IS '创建人 (账号, 由数据库按当前角色记录)';
        COMMENT ON COLUMN incident.state_changed_by IS '最近状态变更人 (账号, 由数据库按当前角色记录)';
        COMMENT ON COLUMN incident.state_changed_at IS '最近状态变更时间';

        CREATE FUNCTION incident_actors() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
            SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE
            who text := audit.actor_of(audit.caller(), NULL);
        BEGIN
            IF TG_OP = 'INSERT' THEN
                NEW.created_by := who;
                NEW.state_changed_by := who;
                NEW.state_changed_at := now();
            ELSE
                NEW.created_by := OLD.created_by;
                IF NEW.state IS DISTINCT FROM OLD.state THEN
                    NEW.state_changed_by := who;
                    NEW.state_changed_at := now();
                ELSE
                    NEW.state_changed_by := OLD.state_changed_by;
                    NEW.state_changed_at := OLD.state_changed_at;
                END IF;
            END IF;
            RETURN NEW;
        END
        $f$;
        ALTER FUNCTION incident_actors() OWNER TO {OWNER};
        COMMENT ON FUNCTION incident_actors() IS '事故的创建人与状态变更人: 由数据库按当前角色记录, 不取客户端所给';
        CREATE TRIGGER incident_actors BEFORE INSERT OR UPDATE ON incident
            FOR EACH ROW EXECUTE FUNCTION incident_actors();
    """)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER incident_actors ON incident;
        DROP FUNCTION incident_actors();
        ALTER TABLE incident DROP COLUMN created_by, DROP COLUMN state_changed_by, DROP COLUMN state_changed_at;
    """)
