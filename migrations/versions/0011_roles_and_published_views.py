"""Database roles beside the schema, and masked views of the public collections.

Roles (cluster-wide, created when missing, so every database of a cluster shares them):

- `qiwang_owner` (NOLOGIN) owns every table, view, sequence, function, type and the `dict` and
  `published` schemas. Migrations run as it (migrations/env.py does SET ROLE when the login is a
  member), and so do the operator's bulk commands (load-demo, import) through the owner URL.
- `qiwang_app` (LOGIN, no superuser, owns nothing) is what the web server, the telemetry ingest
  and the analyses connect as: it reads everything except `customer_personal` and writes only what
  those write (readings, quarantine, alarms and their append-only events, device status, outbox,
  incidents, topology findings, jobs, the latest values on sentries and devices). It cannot DROP,
  ALTER or TRUNCATE anything. Its sessions carry `statement_timeout` and `work_mem` limits.
  Issue 18 turns it into the PostgREST-style authenticator (NOINHERIT, SET LOCAL ROLE to the
  signed-in account's role per request); account roles then get these grants instead.

Published views: `published.<table>` holds the table's columns with personal data masked, and the
OGC collections, their vector tiles and filters read from them (spatial/collections.py), so no
path over the API sees or filters on a raw value: staff names and phones on valves, regulators,
sentries, hazards, inspections and crew bases (张**, 138****0000), residents' addresses cut before
the house number, and social credit codes of individuals (个体工商户, GB 32100 code 92…, and any a
resident carries) to their first and last 4 characters.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from alembic import op

from migrations.fragments import published_view

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OWNER, APP = "qiwang_owner", "qiwang_app"

# What the application writes (grep for INSERT/UPDATE/DELETE/COPY in app/, telemetry/,
# network_analysis/); everything else it may only read.
APP_WRITES = {
    "reading": "INSERT, UPDATE",             # COPY, then INSERT … ON CONFLICT DO UPDATE
    "reading_quarantine": "INSERT, UPDATE",  # replayed_at
    "alarm": "INSERT, UPDATE",
    "alarm_event": "INSERT",                 # append-only (its trigger refuses UPDATE and DELETE too)
    "device_status_log": "INSERT",
    "outbox": "INSERT, UPDATE, DELETE",      # sent / expired records are deleted
    "sentry": "UPDATE",                      # latest reading and status
    "device": "UPDATE",
    "incident": "INSERT, UPDATE",
    "topology_issue": "INSERT, DELETE",      # a QA run replaces its findings
    "jobs": "INSERT, UPDATE, DELETE",        # pygeoapi's job manager
}
APP_LIMITS = {"statement_timeout": "60s", "work_mem": "16MB"}

STAFF = {"responsible_person": "published.mask_name(t.responsible_person)",
         "responsible_phone": "published.mask_phone(t.responsible_phone)"}
INSPECTOR = {"inspector": "published.mask_name(t.inspector)",
             "inspector_phone": "published.mask_phone(t.inspector_phone)"}
MASKS: dict[str, dict[str, str]] = {
    "valve": STAFF,
    "regulator": STAFF,
    "sentry": STAFF,
    "hazard": INSPECTOR,
    "inspection": INSPECTOR,
    "crew_base": {"phone": "published.mask_phone(t.phone)"},
    "customer": {
        "address": "CASE WHEN t.user_type = 1 THEN published.mask_address(t.address) ELSE t.address END",
        "credit_code": "CASE WHEN t.user_type = 1 OR t.credit_code LIKE '92%' "
                       "THEN published.mask_credit_code(t.credit_code) ELSE t.credit_code END",
    },
}


def _transfer_ownership(to: str) -> str:
    """Every object of public and dict that no extension owns goes to `to` (role name or session_user)."""
    role = "session_user" if to == "session_user" else f"'{to}'"
    return f"""
    DO $$
    DECLARE r record; target text := {role};
    BEGIN
        FOR r IN
            SELECT format('ALTER %s %s OWNER TO %I',
                          CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                         WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                          c.oid::regclass, target) AS stmt
            FROM pg_class c
            WHERE c.relnamespace IN ('public'::regnamespace, 'dict'::regnamespace)
              AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                              AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
        UNION ALL
            SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, target)
            FROM pg_proc p WHERE p.pronamespace IN ('public'::regnamespace, 'dict'::regnamespace)
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                              AND d.deptype = 'e')
        UNION ALL
            SELECT format('ALTER %s %s OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                          t.oid::regtype, target)
            FROM pg_type t WHERE t.typnamespace IN ('public'::regnamespace, 'dict'::regnamespace)
              AND t.typtype IN ('d', 'e') AND t.typrelid = 0
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                              AND d.deptype = 'e')
        UNION ALL
            SELECT format('ALTER SCHEMA dict OWNER TO %I', target)
        LOOP
            EXECUTE r.stmt;
        END LOOP;
    END $$;
    """


def upgrade() -> None:
    limits = "\n".join(f"ALTER ROLE {APP} SET {name} = '{value}';" for name, value in APP_LIMITS.items())
    writes = "\n".join(f"GRANT {privileges} ON {table} TO {APP};" for table, privileges in APP_WRITES.items())
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER}') THEN
                CREATE ROLE {OWNER} NOLOGIN;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP}') THEN
                CREATE ROLE {APP} LOGIN;
            END IF;
            -- the migrating login must be able to act as the owner (superusers already can)
            IF NOT pg_has_role(current_user, '{OWNER}', 'MEMBER') THEN
                EXECUTE format('GRANT {OWNER} TO %I', current_user);
            END IF;
            EXECUTE format('GRANT CREATE, CONNECT, TEMPORARY ON DATABASE %I TO {OWNER}', current_database());
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {APP}', current_database());
        END $$;
        ALTER ROLE {APP} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
        {limits}
        COMMENT ON ROLE {OWNER} IS 'Qiwang: owns the schema; migrations and bulk loads run as it';
        COMMENT ON ROLE {APP} IS 'Qiwang: the application (web, ingest, analyses); owns nothing';

        GRANT USAGE, CREATE ON SCHEMA public TO {OWNER};
        {_transfer_ownership(OWNER)}
        SET ROLE {OWNER};

        CREATE SCHEMA published AUTHORIZATION {OWNER};
        COMMENT ON SCHEMA published IS '公开图层: the tables of the OGC collections with personal data masked';
        CREATE FUNCTION published.mask_name(name text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
            RETURN left(name, 1) || '**';
        COMMENT ON FUNCTION published.mask_name(text) IS '姓名脱敏: 张**';
        CREATE FUNCTION published.mask_phone(phone text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
            RETURN CASE WHEN length(phone) >= 8 THEN left(phone, 3) || '****' || right(phone, 4)
                        ELSE repeat('*', length(phone)) END;
        COMMENT ON FUNCTION published.mask_phone(text) IS '电话脱敏: 138****0000 (first 3, last 4 kept)';
        -- Cut at the first house number: digits or Chinese numerals followed by 号/号楼/栋/幢/座/单元/
        -- 层/室/户 (楼 alone is no cut: 五一路百货大楼 is a place); what is left names the district,
        -- street and compound.
        CREATE FUNCTION published.mask_address(address text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
            RETURN regexp_replace(address,
                '[0-9０-９〇零一二三四五六七八九十百千甲乙丙丁-]+(号楼|号院|号|栋|幢|座|单元|层|室|户).*$', '');
        COMMENT ON FUNCTION published.mask_address(text) IS '地址脱敏: 到小区/街道为止, 去掉门牌号、楼号、单元、室';
        CREATE FUNCTION published.mask_credit_code(code text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
            RETURN left(code, 4) || repeat('*', greatest(length(code) - 8, 0)) || right(code, 4);
        COMMENT ON FUNCTION published.mask_credit_code(text) IS '统一社会信用代码脱敏 (个体工商户): 前4位与后4位';
        {"".join(published_view(op.get_bind(), table, masks) + chr(10) for table, masks in MASKS.items())}

        -- The ingest creates the month's partition before a batch: as the owner, and only the app may.
        ALTER FUNCTION ensure_reading_partition(timestamptz) SECURITY DEFINER SET search_path = public, pg_temp;
        REVOKE EXECUTE ON FUNCTION ensure_reading_partition(timestamptz) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION ensure_reading_partition(timestamptz) TO {APP};

        GRANT USAGE ON SCHEMA public, dict, published TO {APP};
        GRANT SELECT ON ALL TABLES IN SCHEMA public, dict, published TO {APP};
        REVOKE ALL ON customer_personal FROM {APP};
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP};
        {writes}
        -- Tables of later migrations: readable by the app; writes are granted by name.
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public, dict, published GRANT SELECT ON TABLES TO {APP};
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP};
    """)
    # Session-wide (not LOCAL): the migrations after this one, in the same run, are the owner's too.
    op.execute(f"SET ROLE {OWNER}")


def downgrade() -> None:
    # The roles stay: they are the cluster's, and other databases may use them.
    op.execute(f"""
        RESET ROLE;
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public, dict, published REVOKE SELECT ON TABLES FROM {APP};
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {APP};
        DROP SCHEMA published CASCADE;
        ALTER FUNCTION ensure_reading_partition(timestamptz) SECURITY INVOKER RESET search_path;
        REVOKE ALL ON ALL TABLES IN SCHEMA public, dict FROM {APP};
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP};
        REVOKE ALL ON FUNCTION ensure_reading_partition(timestamptz) FROM {APP};
        GRANT EXECUTE ON FUNCTION ensure_reading_partition(timestamptz) TO PUBLIC;
        REVOKE ALL ON SCHEMA public, dict FROM {APP};
        {_transfer_ownership("session_user")}
        REVOKE CREATE ON SCHEMA public FROM {OWNER};
        DO $$ BEGIN
            EXECUTE format('REVOKE ALL ON DATABASE %I FROM {OWNER}, {APP}', current_database());
        END $$;
    """)
