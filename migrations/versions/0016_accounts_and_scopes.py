"""Accounts, duties and data scopes enforced by PostgreSQL (issue 18; the PostgREST pattern).

Who is who:

- `qiwang_app`, the login of the web server, becomes the **authenticator**: NOINHERIT and without a
  privilege of its own. Per request transaction it takes the signed-in account's role
  (set_config('role', …, true), db/engine.py); a path that forgets to is refused, never answered
  with someone else's rows.
- Every account has its own role, `name@database` (roles are the cluster's; tests make many
  databases), NOLOGIN unless the account has a direct database login (`user add --db-login`).
  Its memberships carry its duties and the kind of its scope.
- Duty roles: `qiwang_viewer`, `qiwang_dispatcher`, `qiwang_gis_editor`, `qiwang_safety_officer`,
  `qiwang_field_worker`, `qiwang_enterprise_admin`, `qiwang_regulator`, `qiwang_pii`, and the three
  separated duties of 等保 `qiwang_sysadmin`, `qiwang_security_admin`, `qiwang_auditor`, which read
  no business data. The business duties are members of `qiwang_reader` (SELECT on the business
  tables, published views, dictionaries); writes are granted per duty.
- Scope kinds: `qiwang_enterprise_staff` sees the rows of its enterprise (enterprise_code);
  `qiwang_division_staff` (regulators) sees the rows located in its division and the divisions
  below it (the row's admin_code: supervision is territorial). `qiwang_all_rows` sees every row:
  `qiwang_system` (the app's own reads of the whole network: topology, road graph, catalog, QA
  findings, job pruning) and `qiwang_ingest` (telemetry) are its members. The owner bypasses RLS
  (migrations, the operator's bulk commands).
- `qiwang_auth` reads and writes the accounts' credentials (the login path).

Scopes are read from `auth.me` and `auth.my_divisions`, views filtered by `current_user`; never
from a setting a client could change. The policies use `IN (SELECT … FROM auth.me)`, a subplan
evaluated once per statement (measured at 1 M pipes: 1.02–1.10× the unrestricted time for tiles,
1.03× for pages; a per-row function call cost 2.4–2.8×).

`qiwang_ingest` and `qiwang_system` get BYPASSRLS: they see every row anyway, and PostgreSQL
refuses COPY FROM (the ingest's batches) under row-level security whatever the policy.

PostGIS's `geometry_overlaps` (the `&&` operator) is marked LEAKPROOF so that its GiST index stays
usable under row-level security (without it every tile scans the whole table); it raises on no
row value, so the mark is sound. This needs a superuser: without one the migration warns and
scopes stay correct but slow.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

OWNER, APP = "qiwang_owner", "qiwang_app"

DUTIES = ("viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker", "enterprise_admin",
          "regulator", "pii", "sysadmin", "security_admin", "auditor")
BUSINESS_DUTIES = ("viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker", "enterprise_admin",
                   "regulator")
GROUPS = ("qiwang_all_rows", "qiwang_system", "qiwang_ingest", "qiwang_auth", "qiwang_account",
          "qiwang_reader", "qiwang_enterprise_staff", "qiwang_division_staff", "qiwang_db_login",
          *(f"qiwang_{d}" for d in DUTIES))

# What each writing duty may change (tables; the policies decide which rows).
NETWORK = ("node", "pipe", "valve", "regulator", "station", "device", "sentry", "customer")
DUTY_WRITES = {
    "dispatcher": {"alarm": "UPDATE", "alarm_event": "INSERT", "incident": "INSERT, UPDATE"},
    "gis_editor": {table: "INSERT, UPDATE, DELETE" for table in NETWORK},
    "safety_officer": {"hazard": "INSERT, UPDATE", "inspection": "INSERT, UPDATE"},
    "field_worker": {"hazard": "INSERT", "inspection": "INSERT"},
}
# What the telemetry ingest writes (0011's grants of qiwang_app, telemetry part).
INGEST_WRITES = {
    "reading": "INSERT, UPDATE", "reading_quarantine": "INSERT, UPDATE", "alarm": "INSERT, UPDATE",
    "alarm_event": "INSERT", "device_status_log": "INSERT", "outbox": "INSERT, UPDATE, DELETE",
    "sentry": "UPDATE", "device": "UPDATE",
}
# What the app does for itself on the whole network.
SYSTEM_WRITES = {"topology_issue": "INSERT, DELETE", "jobs": "INSERT, UPDATE, DELETE",
                 "incident": "INSERT, UPDATE"}
# Every account may run processes: their job rows are its own (policy on owner_role).
ACCOUNT_WRITES = {"jobs": "INSERT, UPDATE, DELETE"}

# Tables scoped through another table's rows rather than columns of their own.
SCOPED_THROUGH = {
    "alarm_event": "alarm_id IN (SELECT id FROM alarm)",
    "customer_personal": "customer_id IN (SELECT id FROM customer)",
}
# Tables without rows of an enterprise: readable by every business duty.
DIRECTORY = ("admin_division", "network_version", "road_version")
# Not for accounts at all (machine queues).
MACHINE_ONLY = ("reading_quarantine", "outbox")

ENTERPRISE_SCOPE = "enterprise_code IN (SELECT enterprise_code FROM auth.me)"
DIVISION_SCOPE = "admin_code IN (SELECT admin_code FROM auth.my_divisions)"


def _grants(table_privileges: dict[str, str], role: str) -> str:
    return "\n".join(f"GRANT {privileges} ON {table} TO {role};" for table, privileges in table_privileges.items())


def upgrade() -> None:
    create_groups = "\n".join(
        f"IF to_regrole('{g}') IS NULL THEN CREATE ROLE {g} NOLOGIN; END IF;" for g in GROUPS)
    duty_writes = "\n".join(_grants(tables, f"qiwang_{duty}") for duty, tables in DUTY_WRITES.items())
    readers = ", ".join(f"qiwang_{d}" for d in BUSINESS_DUTIES)
    op.execute(f"""
        RESET ROLE;   -- roles and LEAKPROOF need the migrating login itself (a superuser when embedded)
        DO $$
        BEGIN
            {create_groups}
            IF to_regrole('qiwang_role_admin') IS NULL THEN CREATE ROLE qiwang_role_admin NOLOGIN CREATEROLE; END IF;
            IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                ALTER FUNCTION geometry_overlaps(geometry, geometry) LEAKPROOF;
                -- The app's own roles see every row anyway; PostgreSQL refuses COPY FROM (the
                -- ingest's batches) under row-level security, whatever the policy says.
                ALTER ROLE qiwang_ingest BYPASSRLS;
                ALTER ROLE qiwang_system BYPASSRLS;
            ELSE
                RAISE WARNING 'not a superuser: ask the DBA for ALTER FUNCTION geometry_overlaps(geometry, geometry) '
                              'LEAKPROOF (else spatial indexes are not used under row-level security) and ALTER '
                              'ROLE qiwang_ingest BYPASSRLS (else the ingest cannot COPY its batches)';
            END IF;
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO qiwang_account, qiwang_db_login',
                           current_database());
            -- the migrating login (the operator's) may act as the app's own roles
            EXECUTE format('GRANT qiwang_system, qiwang_ingest TO %I', session_user);
        END $$;
        COMMENT ON ROLE qiwang_all_rows IS 'Qiwang: policies let its members see every row';
        COMMENT ON ROLE qiwang_system IS 'Qiwang: the app''s own work on the whole network (topology, QA, jobs)';
        COMMENT ON ROLE qiwang_ingest IS 'Qiwang: the telemetry ingest';
        COMMENT ON ROLE qiwang_auth IS 'Qiwang: the login path (credentials, sessions, tokens)';
        COMMENT ON ROLE qiwang_account IS 'Qiwang: every account (its own scope, dictionaries)';
        COMMENT ON ROLE qiwang_reader IS 'Qiwang: reads the business tables (every business duty)';
        COMMENT ON ROLE qiwang_enterprise_staff IS 'Qiwang: scope = the rows of the account''s enterprise';
        COMMENT ON ROLE qiwang_division_staff IS 'Qiwang: scope = the rows located in the account''s division';
        COMMENT ON ROLE qiwang_role_admin IS 'Qiwang: creates and drops account roles, only through auth functions';
        GRANT qiwang_all_rows TO qiwang_system, qiwang_ingest;
        GRANT qiwang_reader TO {readers};
        GRANT qiwang_system, qiwang_ingest, qiwang_auth TO {APP};
        GRANT qiwang_role_admin TO {OWNER};

        -- The authenticator: nothing of its own, roles only by switching to them.
        ALTER ROLE {APP} NOINHERIT;
        REVOKE ALL ON ALL TABLES IN SCHEMA public, dict, published FROM {APP};
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP};
        REVOKE ALL ON FUNCTION ensure_reading_partition(timestamptz) FROM {APP};
        REVOKE USAGE ON SCHEMA public, dict, published FROM {APP};
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public, dict, published REVOKE SELECT ON TABLES FROM {APP};
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {APP};

        SET ROLE {OWNER};
        CREATE EXTENSION IF NOT EXISTS pgcrypto;

        CREATE SCHEMA auth AUTHORIZATION {OWNER};
        GRANT USAGE, CREATE ON SCHEMA auth TO qiwang_role_admin;   -- it owns the account-role functions
        COMMENT ON SCHEMA auth IS '账号与权限: accounts, credentials, sessions, tokens';
        CREATE TABLE auth.account (
            id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name                 text NOT NULL UNIQUE
                                 CONSTRAINT account_name_is_login CHECK (name ~ '^[a-z][a-z0-9_.-]{{2,31}}$'),
            display_name         text NOT NULL,
            db_role              name NOT NULL UNIQUE,
            enterprise_code      t_enterprise_code REFERENCES enterprise,
            admin_code           t_admin_code REFERENCES admin_division,
            duties               text[] NOT NULL CONSTRAINT duties_are_known
                                 CHECK (duties <@ ARRAY[{", ".join(f"'{d}'" for d in DUTIES)}]::text[]
                                        AND cardinality(duties) > 0),
            password_hash        text,
            password_changed_at  timestamptz,
            must_change_password boolean NOT NULL DEFAULT true,
            locked_until         timestamptz,
            disabled_at          timestamptz,
            db_login             boolean NOT NULL DEFAULT false,
            auth_version         integer NOT NULL DEFAULT 1,
            created_at           timestamptz NOT NULL DEFAULT now(),
            created_by           text NOT NULL,
            CONSTRAINT account_has_one_home CHECK ((enterprise_code IS NULL) <> (admin_code IS NULL)),
            CONSTRAINT regulators_belong_to_divisions
                CHECK (NOT 'regulator' = ANY (duties) OR admin_code IS NOT NULL)
        );
        COMMENT ON TABLE auth.account IS '账号: one person, in one enterprise or one administrative division';
        COMMENT ON COLUMN auth.account.name IS '登录名';
        COMMENT ON COLUMN auth.account.display_name IS '姓名';
        COMMENT ON COLUMN auth.account.db_role IS '数据库角色 (name@database)';
        COMMENT ON COLUMN auth.account.duties IS '角色 (可组合)';
        COMMENT ON COLUMN auth.account.auth_version IS '凭据版本: bumped by every change that ends sessions';
        CREATE TABLE auth.password_history (
            account_id  bigint NOT NULL REFERENCES auth.account ON DELETE CASCADE,
            hash        text NOT NULL,
            set_at      timestamptz NOT NULL
        );
        CREATE INDEX password_history_account ON auth.password_history (account_id, set_at DESC);
        CREATE TABLE auth.login_failure (
            account_id  bigint NOT NULL REFERENCES auth.account ON DELETE CASCADE,
            at          timestamptz NOT NULL,
            client_addr text
        );
        CREATE INDEX login_failure_account ON auth.login_failure (account_id, at DESC);
        CREATE TABLE auth.token (
            id           text PRIMARY KEY,
            account_id   bigint NOT NULL REFERENCES auth.account ON DELETE CASCADE,
            secret_hash  bytea NOT NULL,
            created_at   timestamptz NOT NULL,
            expires_at   timestamptz NOT NULL,
            revoked_at   timestamptz,
            last_used_at timestamptz
        );
        COMMENT ON TABLE auth.token IS 'API 令牌: stored as a hash of the secret, expiring, revocable';
        CREATE TABLE auth.session (
            id_hash      bytea PRIMARY KEY,
            account_id   bigint NOT NULL REFERENCES auth.account ON DELETE CASCADE,
            created_at   timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL,
            ended_at     timestamptz,
            client_addr  text
        );
        COMMENT ON TABLE auth.session IS '网页会话: stored as a hash of the cookie';

        -- The caller's own account and divisions: views owned by the owner, filtered by current_user.
        CREATE VIEW auth.me WITH (security_barrier) AS
            SELECT id, name, display_name, enterprise_code, admin_code, duties
              FROM auth.account WHERE db_role = current_user AND disabled_at IS NULL;
        CREATE VIEW auth.my_divisions WITH (security_barrier) AS
            WITH RECURSIVE d AS (
                SELECT admin_code FROM auth.me WHERE admin_code IS NOT NULL
                UNION
                SELECT c.admin_code FROM admin_division c JOIN d ON c.parent_code = d.admin_code)
            SELECT admin_code FROM d;
        COMMENT ON VIEW auth.me IS '当前账号 (by current_user)';
        COMMENT ON VIEW auth.my_divisions IS '当前账号的辖区: its division and every division below it';
        GRANT USAGE ON SCHEMA auth TO qiwang_account, qiwang_auth;
        GRANT SELECT ON auth.me, auth.my_divisions TO qiwang_account;
        GRANT SELECT, INSERT, UPDATE ON auth.account TO qiwang_auth;
        GRANT SELECT, INSERT, DELETE ON auth.password_history, auth.login_failure TO qiwang_auth;
        GRANT SELECT, INSERT, UPDATE ON auth.token, auth.session TO qiwang_auth;

        -- What every business duty reads; the three separated duties read none of it.
        GRANT USAGE ON SCHEMA public, dict, published TO qiwang_reader, qiwang_system, qiwang_ingest;
        GRANT SELECT ON ALL TABLES IN SCHEMA public, dict, published TO qiwang_reader, qiwang_system, qiwang_ingest;
        REVOKE ALL ON customer_personal FROM qiwang_reader, qiwang_system, qiwang_ingest;
        REVOKE ALL ON {", ".join(MACHINE_ONLY)} FROM qiwang_reader;
        GRANT USAGE ON SCHEMA public TO qiwang_pii;
        -- customer too: the policy of customer_personal finds its rows through the customers in scope
        GRANT SELECT ON customer_personal, customer TO qiwang_pii;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO qiwang_reader, qiwang_system, qiwang_ingest;
        {duty_writes}
        {_grants(INGEST_WRITES, "qiwang_ingest")}
        {_grants(SYSTEM_WRITES, "qiwang_system")}
        {_grants(ACCOUNT_WRITES, "qiwang_reader")}
        GRANT EXECUTE ON FUNCTION ensure_reading_partition(timestamptz) TO qiwang_ingest;
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public, dict, published
            GRANT SELECT ON TABLES TO qiwang_reader, qiwang_system, qiwang_ingest;
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public
            GRANT USAGE, SELECT ON SEQUENCES TO qiwang_reader, qiwang_system, qiwang_ingest;

        -- Views read with the reader's rights, so the tables' policies apply to them.
        ALTER VIEW telemetry_device SET (security_invoker = true);

        -- Job rows belong to the account that ran the process.
        ALTER TABLE jobs ADD COLUMN owner_role name NOT NULL DEFAULT current_user;
        COMMENT ON COLUMN jobs.owner_role IS '执行账号的数据库角色';

        DO $$
        DECLARE t text;
        BEGIN
            -- Every table with rows of an enterprise: its enterprise's staff, the divisions it lies in.
            FOR t IN
                SELECT c.relname FROM pg_class c
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'enterprise_code' AND NOT a.attisdropped
                 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            LOOP
                EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
                EXECUTE format('CREATE POLICY all_rows ON %I TO qiwang_all_rows USING (true) WITH CHECK (true)', t);
                EXECUTE format('CREATE POLICY enterprise_staff ON %I TO qiwang_enterprise_staff USING ({ENTERPRISE_SCOPE}) '
                               'WITH CHECK ({ENTERPRISE_SCOPE})', t);
                IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = t::regclass AND attname = 'admin_code') THEN
                    EXECUTE format('CREATE POLICY division_staff ON %I FOR SELECT TO qiwang_division_staff '
                                   'USING ({DIVISION_SCOPE})', t);
                END IF;
            END LOOP;
        END $$;
        -- A partition read directly would skip its parent's policies: no account may.
        DO $$
        DECLARE p text;
        BEGIN
            FOR p IN SELECT c.relname FROM pg_class c
                      WHERE c.relnamespace = 'public'::regnamespace AND c.relispartition AND c.relkind IN ('r', 'p')
            LOOP
                EXECUTE format('REVOKE ALL ON %I FROM qiwang_reader', p);
            END LOOP;
        END $$;
        {"".join(f'''
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        CREATE POLICY all_rows ON {table} TO qiwang_all_rows USING (true) WITH CHECK (true);
        CREATE POLICY through_parent ON {table} TO qiwang_account USING ({rule}) WITH CHECK ({rule});'''
                 for table, rule in SCOPED_THROUGH.items())}
        ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
        CREATE POLICY all_rows ON jobs TO qiwang_all_rows USING (true) WITH CHECK (true);
        CREATE POLICY own_jobs ON jobs TO qiwang_account USING (owner_role = current_user)
            WITH CHECK (owner_role = current_user);
        GRANT SELECT ON {", ".join(DIRECTORY)} TO qiwang_account;
        GRANT USAGE ON SCHEMA public, dict TO qiwang_account;
        GRANT SELECT ON ALL TABLES IN SCHEMA dict TO qiwang_account;

        -- Account roles: created and dropped only through these, which grant nothing but Qiwang's groups.
        CREATE FUNCTION auth.create_account_role(role_name name, groups text[], login_verifier text)
            RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE g text;
        BEGIN
            IF EXISTS (SELECT unnest(groups) EXCEPT SELECT unnest(ARRAY[{", ".join(f"'{g}'" for g in GROUPS)}])) THEN
                RAISE EXCEPTION 'not a Qiwang group among %', groups USING ERRCODE = '22023';
            END IF;
            IF to_regrole(role_name) IS NULL THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', role_name);
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = role_name
                        AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)) THEN
                RAISE EXCEPTION 'role % has powers an account may not have', role_name USING ERRCODE = '42501';
            END IF;
            EXECUTE format('ALTER ROLE %I INHERIT', role_name);
            FOR g IN SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                      WHERE m.member = role_name::regrole AND r.rolname LIKE 'qiwang\\_%'
                        AND NOT r.rolname = ANY (groups)
            LOOP
                EXECUTE format('REVOKE %I FROM %I', g, role_name);
            END LOOP;
            FOREACH g IN ARRAY groups LOOP
                EXECUTE format('GRANT %I TO %I', g, role_name);
            END LOOP;
            EXECUTE format('GRANT %I TO {APP}', role_name);
            IF login_verifier IS NULL THEN
                EXECUTE format('ALTER ROLE %I NOLOGIN PASSWORD NULL', role_name);
            ELSE
                EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L CONNECTION LIMIT 5', role_name, login_verifier);
                EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', role_name, '60s');
            END IF;
        END $f$;
        ALTER FUNCTION auth.create_account_role(name, text[], text) OWNER TO qiwang_role_admin;
        CREATE FUNCTION auth.drop_account_role(role_name name) RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        BEGIN
            IF to_regrole(role_name) IS NOT NULL AND pg_has_role(role_name, 'qiwang_account', 'MEMBER') THEN
                EXECUTE format('DROP ROLE %I', role_name);
            END IF;
        END $f$;
        ALTER FUNCTION auth.drop_account_role(name) OWNER TO qiwang_role_admin;
        REVOKE ALL ON FUNCTION auth.create_account_role(name, text[], text), auth.drop_account_role(name) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION auth.create_account_role(name, text[], text), auth.drop_account_role(name)
            TO {OWNER};
        -- Writers of the network and the roads bump the versions the caches key on.
        ALTER FUNCTION bump_network_version() SECURITY DEFINER SET search_path = public, pg_temp;
        ALTER FUNCTION bump_road_version() SECURITY DEFINER SET search_path = public, pg_temp;
    """)


def downgrade() -> None:
    app_writes = {**INGEST_WRITES, "incident": "INSERT, UPDATE", "topology_issue": "INSERT, DELETE",
                  "jobs": "INSERT, UPDATE, DELETE"}
    op.execute(f"""
        UPDATE jobs SET owner_role = 'qiwang_system' WHERE owner_role IN (SELECT db_role FROM auth.account);
        SELECT auth.drop_account_role(db_role) FROM auth.account;   -- the accounts' roles go with them
        DO $$
        DECLARE t text;
        BEGIN
            FOR t IN SELECT c.relname FROM pg_class c
                      WHERE c.relnamespace = 'public'::regnamespace AND c.relrowsecurity
            LOOP
                EXECUTE format('DROP POLICY IF EXISTS all_rows ON %I', t);
                EXECUTE format('DROP POLICY IF EXISTS enterprise_staff ON %I', t);
                EXECUTE format('DROP POLICY IF EXISTS division_staff ON %I', t);
                EXECUTE format('DROP POLICY IF EXISTS through_parent ON %I', t);
                EXECUTE format('DROP POLICY IF EXISTS own_jobs ON %I', t);
                EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
            END LOOP;
        END $$;
        ALTER TABLE jobs DROP COLUMN owner_role;
        ALTER VIEW telemetry_device RESET (security_invoker);
        DROP SCHEMA auth CASCADE;
        ALTER FUNCTION bump_network_version() SECURITY INVOKER RESET search_path;
        ALTER FUNCTION bump_road_version() SECURITY INVOKER RESET search_path;
        RESET ROLE;
        DO $$ BEGIN
            IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                ALTER ROLE qiwang_ingest NOBYPASSRLS;
                ALTER ROLE qiwang_system NOBYPASSRLS;
            END IF;
        END $$;
        ALTER ROLE {APP} INHERIT;
        GRANT USAGE ON SCHEMA public, dict, published TO {APP};
        GRANT SELECT ON ALL TABLES IN SCHEMA public, dict, published TO {APP};
        REVOKE ALL ON customer_personal FROM {APP};
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP};
        {_grants(app_writes, APP)}
        GRANT EXECUTE ON FUNCTION ensure_reading_partition(timestamptz) TO {APP};
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public, dict, published GRANT SELECT ON TABLES TO {APP};
        ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP};
        SET ROLE {OWNER};
    """)
