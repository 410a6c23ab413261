"""Accounts managed over HTTP: the login path may give an account's role its groups (issue 18).

Until now only the owner (the CLI) could make an account's database role
(`auth.create_account_role`, migration 0016), so administrators signed in to the web app could
list accounts but not create, disable or re-role them. This adds two narrower functions for
`qiwang_auth` (the login path, which holds the accounts' table):

- `auth.set_account_groups(role, duties, division)` makes a new NOLOGIN account role or changes
  the groups of an existing one to `qiwang_account`, its scope kind and its duties. It gives only
  the business duties and `pii`: the three separated duties of 等保 (sysadmin, security_admin,
  auditor) and the service groups stay the owner's to give, and a role that holds a separated
  duty, is no account's, or has any power (superuser, CREATEROLE, BYPASSRLS …) is refused. A
  direct database login (`qiwang_db_login`, the role's LOGIN and password) is kept as it is.
- `auth.disable_account_login(role)` takes the direct login of an account's role away (a
  disabled account must not reach PostgreSQL either).
- `auth.set_account_login_password(role, verifier)` gives an account's direct login its new
  password (a SCRAM verifier) when the account changes its password on the web: the role must
  already log in, so nothing gains a login this way.

The owner's `auth.create_account_role` and `auth.drop_account_role` of 0016 are replaced by the
same functions looking the role up by name: `to_regrole` and `::regrole` parse their text as an
identifier, so an account called ``zhang.san`` (role ``zhang.san@qiwang``) failed with "invalid
name syntax" although its name is valid. The downgrade keeps the corrected versions.

Which account may do which change (its remit) is the application's rule, accounts/remit.py; the
database refuses what no remit may do whatever the caller. `qiwang_auth` may also read the
enterprise and division codes, so that a request naming a missing one is answered 400 before a
foreign key has to refuse it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

OWNER, APP = "qiwang_owner", "qiwang_app"
# What the login path may give: the business duties and pii (accounts/store.py DUTIES, less the
# separated duties).
DELEGABLE = ("viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker", "enterprise_admin",
             "regulator", "pii")
SEPARATED = ("sysadmin", "security_admin", "auditor")
GROUPS = ("qiwang_all_rows", "qiwang_system", "qiwang_ingest", "qiwang_auth", "qiwang_account",
          "qiwang_reader", "qiwang_enterprise_staff", "qiwang_division_staff", "qiwang_db_login",
          *(f"qiwang_{d}" for d in (*DELEGABLE, *SEPARATED)))   # migration 0016's


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::text[]"


def _sync_groups(groups: str, keep: str = "") -> str:
    """PL/pgSQL: make the Qiwang groups of role `r` (named `role_name`) those of the array
    variable `groups` (revoke the others, except what `keep` spares; grant the missing)."""
    return f"""
            FOR g IN SELECT o.rolname FROM pg_auth_members m JOIN pg_roles o ON o.oid = m.roleid
                      WHERE m.member = r AND o.rolname LIKE 'qiwang\\_%' {keep} AND NOT o.rolname = ANY ({groups})
            LOOP
                EXECUTE format('REVOKE %I FROM %I', g, role_name);
            END LOOP;
            FOREACH g IN ARRAY {groups} LOOP
                EXECUTE format('GRANT %I TO %I', g, role_name);
            END LOOP;"""


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION auth.set_account_groups(role_name name, duties text[], division boolean)
            RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE
            g text;
            wanted text[];
            r oid := (SELECT oid FROM pg_roles WHERE rolname = role_name);
        BEGIN
            IF coalesce(cardinality(duties), 0) = 0 THEN
                RAISE EXCEPTION 'an account needs at least one duty' USING ERRCODE = '22023';
            END IF;
            IF EXISTS (SELECT unnest(duties) EXCEPT SELECT unnest({_array(DELEGABLE)})) THEN
                RAISE EXCEPTION 'only business duties and pii are given here, not %', duties
                    USING ERRCODE = '42501';
            END IF;
            IF 'regulator' = ANY (duties) AND NOT division THEN
                RAISE EXCEPTION 'a regulator belongs to a division' USING ERRCODE = '22023';
            END IF;
            IF r IS NULL THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', role_name);
                EXECUTE format('ALTER ROLE %I INHERIT', role_name);
                EXECUTE format('GRANT %I TO {APP}', role_name);
                r := (SELECT oid FROM pg_roles WHERE rolname = role_name);
            ELSIF NOT EXISTS (SELECT FROM pg_auth_members m
                               WHERE m.member = r AND m.roleid = 'qiwang_account'::regrole) THEN
                RAISE EXCEPTION 'role % is no account''s', role_name USING ERRCODE = '42501';
            ELSIF EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles s ON s.oid = m.roleid
                           WHERE m.member = r
                             AND s.rolname = ANY (ARRAY[{", ".join(f"'qiwang_{d}'" for d in SEPARATED)}])) THEN
                RAISE EXCEPTION 'role % holds a separated duty: only the owner changes it', role_name
                    USING ERRCODE = '42501';
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = role_name
                        AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)) THEN
                RAISE EXCEPTION 'role % has powers an account may not have', role_name USING ERRCODE = '42501';
            END IF;
            wanted := ARRAY['qiwang_account',
                            CASE WHEN division THEN 'qiwang_division_staff' ELSE 'qiwang_enterprise_staff' END]
                      || ARRAY(SELECT 'qiwang_' || d FROM unnest(duties) d);
            {_sync_groups("wanted", "AND o.rolname <> 'qiwang_db_login'")}
        END $f$;
        ALTER FUNCTION auth.set_account_groups(name, text[], boolean) OWNER TO qiwang_role_admin;

        CREATE FUNCTION auth.disable_account_login(role_name name) RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE
            r oid := (SELECT oid FROM pg_roles WHERE rolname = role_name);
        BEGIN
            IF r IS NULL OR NOT EXISTS (SELECT FROM pg_auth_members m
                                         WHERE m.member = r AND m.roleid = 'qiwang_account'::regrole) THEN
                RAISE EXCEPTION 'role % is no account''s', role_name USING ERRCODE = '42501';
            END IF;
            EXECUTE format('ALTER ROLE %I NOLOGIN PASSWORD NULL', role_name);
            IF EXISTS (SELECT FROM pg_auth_members m
                        WHERE m.member = r AND m.roleid = 'qiwang_db_login'::regrole) THEN
                EXECUTE format('REVOKE qiwang_db_login FROM %I', role_name);
            END IF;
        END $f$;
        ALTER FUNCTION auth.disable_account_login(name) OWNER TO qiwang_role_admin;

        CREATE FUNCTION auth.set_account_login_password(role_name name, verifier text) RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE
            r oid := (SELECT oid FROM pg_roles WHERE rolname = role_name);
        BEGIN
            IF r IS NULL OR NOT EXISTS (SELECT FROM pg_auth_members m
                                         WHERE m.member = r AND m.roleid = 'qiwang_db_login'::regrole)
               OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name AND rolcanlogin) THEN
                RAISE EXCEPTION 'role % has no direct login', role_name USING ERRCODE = '42501';
            END IF;
            IF verifier IS NULL OR verifier NOT LIKE 'SCRAM-SHA-256$%' THEN
                RAISE EXCEPTION 'a SCRAM-SHA-256 verifier is expected' USING ERRCODE = '22023';
            END IF;
            EXECUTE format('ALTER ROLE %I PASSWORD %L', role_name, verifier);
        END $f$;
        ALTER FUNCTION auth.set_account_login_password(name, text) OWNER TO qiwang_role_admin;

        CREATE OR REPLACE FUNCTION auth.create_account_role(role_name name, groups text[], login_verifier text)
            RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE
            g text;
            r oid := (SELECT oid FROM pg_roles WHERE rolname = role_name);
        BEGIN
            IF EXISTS (SELECT unnest(groups) EXCEPT SELECT unnest({_array(GROUPS)})) THEN
                RAISE EXCEPTION 'not a Qiwang group among %', groups USING ERRCODE = '22023';
            END IF;
            IF r IS NULL THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', role_name);
                r := (SELECT oid FROM pg_roles WHERE rolname = role_name);
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE oid = r
                        AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)) THEN
                RAISE EXCEPTION 'role % has powers an account may not have', role_name USING ERRCODE = '42501';
            END IF;
            EXECUTE format('ALTER ROLE %I INHERIT', role_name);
            {_sync_groups("groups")}
            EXECUTE format('GRANT %I TO {APP}', role_name);
            IF login_verifier IS NULL THEN
                EXECUTE format('ALTER ROLE %I NOLOGIN PASSWORD NULL', role_name);
            ELSE
                EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L CONNECTION LIMIT 5', role_name, login_verifier);
                EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', role_name, '60s');
            END IF;
        END $f$;
        CREATE OR REPLACE FUNCTION auth.drop_account_role(role_name name) RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = role_name)
               AND pg_has_role(role_name, 'qiwang_account', 'MEMBER') THEN
                EXECUTE format('DROP ROLE %I', role_name);
            END IF;
        END $f$;

        REVOKE ALL ON FUNCTION auth.set_account_groups(name, text[], boolean), auth.disable_account_login(name),
            auth.set_account_login_password(name, text) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION auth.set_account_groups(name, text[], boolean), auth.disable_account_login(name),
            auth.set_account_login_password(name, text) TO {OWNER}, qiwang_auth;

        -- codes only: a request naming a missing enterprise or division is told so
        GRANT SELECT (enterprise_code) ON enterprise TO qiwang_auth;
        GRANT SELECT (admin_code) ON admin_division TO qiwang_auth;
        CREATE POLICY login_path ON enterprise FOR SELECT TO qiwang_auth USING (true);
    """)


def downgrade() -> None:
    op.execute("""
        DROP POLICY login_path ON enterprise;
        REVOKE SELECT (admin_code) ON admin_division FROM qiwang_auth;
        REVOKE SELECT (enterprise_code) ON enterprise FROM qiwang_auth;
        DROP FUNCTION auth.set_account_login_password(name, text);
        DROP FUNCTION auth.disable_account_login(name);
        DROP FUNCTION auth.set_account_groups(name, text[], boolean);
    """)
