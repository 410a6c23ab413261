"""The audit log: one append-only, hash-chained table of logins, account changes and every write (issue 18).

`audit.log` holds one row per event: who (`actor`: the account's name, ``operator:<OS user>`` or
the role), as which database role, what (`action`: login, login_failed, lockout, logout,
account_add, account_disable, password_change, token_create, token_revoke, insert, update,
delete, truncate, pii_read, import, …), on which table and feature (its `code`, else its key),
the changed fields (`changes`: ``{column: [before, after]}`` for an update, the row for an insert
or a delete; geometries and byte strings only as the marker ``"changed"`` / ``"(geometry)"`` /
``"(hidden)"``, secrets never), the request (id, client address) and free `detail`.

Who the actor is, is decided here, never by the client: for an account's role it is the account
(auth.account by the role the transaction acts as, or by the login: an account's direct database
login that SET ROLE to one of its groups is still the account); for any other role the name the trusted
caller gives (the login path names the account signing in), else the setting `qiwang.actor`,
else ``operator`` for the owner and the role's name otherwise. The functions below are SECURITY
DEFINER and find the caller's role in the `role` setting (SET ROLE / set_config('role'), which
a SECURITY DEFINER call leaves as it was), else `session_user` (a direct login).

Chain: a BEFORE INSERT trigger locks the single row of `audit.chain_head` (held to commit, so
rows are chained in commit order of their writers), gives the row the next id and the time, and
sets ``hash = digest(prev_hash || canonical text, algorithm)``, with SM3 (GB/T 32905) when
pgcrypto's OpenSSL has it, else SHA-256; the algorithm is recorded per row. The id is the
chain's (consecutive from 1), not an identity's: identity values are drawn before the lock, in
another order than the chain's. Canonical text (accounts/audit.py recomputes it):

    field(v) = '-' when v is NULL, else length(v) || ':' || v      (length in characters)
    canonical = field(id) | field(at as UTC 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') | field(actor)
                | field(db_role) | field(action) | field(table_name) | field(feature_code)
                | field(changes::text) | field(detail::text) | field(request_id)
                | field(client_addr) | field(algorithm)                 (joined by '|')
    hash = digest(coalesce(prev_hash, '') || convert_to(canonical, 'UTF8'), algorithm)

No role has UPDATE or DELETE on it, and triggers refuse UPDATE, DELETE and TRUNCATE to everyone,
the owner too. When the migrating login is a superuser, event triggers (their functions in schema
`audit_guard`, the superuser's) also refuse any DDL on the audit schema's objects (ALTER TABLE …
DISABLE TRIGGER, DROP, DROP SCHEMA) to non-superusers: only a superuser
can then alter a row, and `./qiwang audit verify` names the first row that no longer fits. A
later migration changing the audit schema therefore runs its DDL after RESET ROLE.

Writers: AFTER INSERT/UPDATE/DELETE row triggers and an AFTER TRUNCATE trigger on every business
table (public tables with enterprise_code, but the telemetry's machine tables and the QA
findings) and on auth.account / auth.token, made by `audit.watch(table)` (a new table, or a new
geometry column, needs a call). They skip the telemetry ingest (`qiwang_ingest`: its alarm
events have their own chain) and, for the owner, bulk loads that set ``qiwang.bulk = 'on'``
(they append one summary row instead). `audit.append(action, detail, …)` records the rest
(logins, failures, lockouts, logouts, tokens, account changes, reads of personal data, imports).
Only `qiwang_auditor` reads the log.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

OWNER = "qiwang_owner"
# May call audit.append: the login path, every account (its own reads of personal data), the app itself.
APPENDERS = "qiwang_auth, qiwang_account, qiwang_system"
# Public tables with enterprise_code that are not watched: written by machines, not people
# (the telemetry ingest's readings, quarantine and status log; a QA run's findings).
NOT_WATCHED = ("reading", "reading_quarantine", "device_status_log", "topology_issue")
# Beside names and phones (audit.watch finds those): residents' addresses and credit codes (0011).
CUSTOMER_MASKS = '{"address": "address", "credit_code": "credit_code"}'
# auth tables: (table, key column, secrets, columns whose change alone is not recorded beside last_*)
AUTH_WATCHED = (("auth.account", "name", "{password_hash}", "{}"),
                ("auth.token", "id", "{secret_hash}", "{}"))


def upgrade() -> None:
    not_watched = ", ".join(f"'{t}'" for t in NOT_WATCHED)
    watch_auth = "\n".join(f"SELECT audit.watch('{t}', '{key}', '{secrets}', '{quiet}');"
                           for t, key, secrets, quiet in AUTH_WATCHED)
    op.execute(f"""
        SET ROLE {OWNER};
        CREATE SCHEMA audit AUTHORIZATION {OWNER};
        COMMENT ON SCHEMA audit IS '审计日志: 登录, 账号变更与每次写入, 只增不改, 哈希链 (SM3)';

        CREATE TABLE audit.chain_head (
            only_row  boolean PRIMARY KEY DEFAULT true CONSTRAINT one_head CHECK (only_row),
            last_id   bigint NOT NULL DEFAULT 0,
            last_hash bytea,
            algorithm text NOT NULL
        );
        COMMENT ON TABLE audit.chain_head IS '哈希链头: 最后一行的编号与哈希 (插入时加锁, 串行成链)';
        COMMENT ON COLUMN audit.chain_head.algorithm IS '摘要算法: sm3 (无则 sha256), 迁移时选定';
        DO $$
        BEGIN
            PERFORM public.digest('x', 'sm3');
            INSERT INTO audit.chain_head (algorithm) VALUES ('sm3');
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pgcrypto has no SM3 here (%): the audit log is chained with SHA-256', SQLERRM;
            INSERT INTO audit.chain_head (algorithm) VALUES ('sha256');
        END $$;

        CREATE TABLE audit.log (
            id           bigint PRIMARY KEY,
            at           timestamptz NOT NULL DEFAULT clock_timestamp(),
            actor        text NOT NULL,
            db_role      name NOT NULL DEFAULT current_user,
            action       text NOT NULL,
            table_name   text,
            feature_code text,
            changes      jsonb,
            request_id   text,
            client_addr  text,
            detail       jsonb,
            algorithm    text NOT NULL,
            prev_hash    bytea,
            hash         bytea NOT NULL
        );
        CREATE INDEX log_at ON audit.log (at);
        CREATE INDEX log_actor ON audit.log (actor, at);
        COMMENT ON TABLE audit.log IS '审计日志: 只增不改, 每行哈希链接上一行';
        COMMENT ON COLUMN audit.log.id IS '序号 (链的顺序, 从 1 连续)';
        COMMENT ON COLUMN audit.log.at IS '时间';
        COMMENT ON COLUMN audit.log.actor IS '操作人: 账号名, operator:<系统用户> 或数据库角色';
        COMMENT ON COLUMN audit.log.db_role IS '数据库角色';
        COMMENT ON COLUMN audit.log.action IS '操作: login, login_failed, lockout, logout, insert, update, delete, …';
        COMMENT ON COLUMN audit.log.table_name IS '表';
        COMMENT ON COLUMN audit.log.feature_code IS '要素编码 (无编码时为主键)';
        COMMENT ON COLUMN audit.log.changes IS '变更: 更新为 {{字段: [前, 后]}}, 插入/删除为整行; 几何只记 "changed"';
        COMMENT ON COLUMN audit.log.request_id IS '请求编号';
        COMMENT ON COLUMN audit.log.client_addr IS '客户端地址';
        COMMENT ON COLUMN audit.log.detail IS '详情';
        COMMENT ON COLUMN audit.log.algorithm IS '摘要算法 (sm3 或 sha256)';
        COMMENT ON COLUMN audit.log.prev_hash IS '上一行的哈希 (第一行为空)';
        COMMENT ON COLUMN audit.log.hash IS '本行哈希: digest(prev_hash || 规范文本)';

        -- The role the transaction acts as: a SECURITY DEFINER call changes current_user, not this.
        CREATE FUNCTION audit.caller() RETURNS name LANGUAGE sql STABLE AS $f$
            SELECT coalesce(nullif(current_setting('role'), 'none'), session_user)::name
        $f$;
        COMMENT ON FUNCTION audit.caller() IS '当前事务所用的角色 (不受 SECURITY DEFINER 影响)';
        CREATE FUNCTION audit.actor_of(who name, given text) RETURNS text
            LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
            SELECT coalesce(
                (SELECT name FROM auth.account WHERE db_role = who),
                -- an account's own login that SET ROLE to one of its groups is still the account
                (SELECT name FROM auth.account WHERE db_role = session_user),
                nullif(given, ''),
                nullif(current_setting('qiwang.actor', true), ''),
                CASE WHEN pg_has_role(who, '{OWNER}', 'MEMBER') THEN 'operator' ELSE who::text END)
        $f$;
        COMMENT ON FUNCTION audit.actor_of(name, text) IS '操作人: 账号角色取其账号 (不信任客户端), 其他取给定名称';
        CREATE FUNCTION audit.field(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
            SELECT CASE WHEN v IS NULL THEN '-' ELSE length(v) || ':' || v END
        $f$;
        CREATE FUNCTION audit.canonical(r audit.log) RETURNS text LANGUAGE sql STABLE AS $f$
            SELECT concat_ws('|', audit.field(r.id::text),
                             audit.field(to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
                             audit.field(r.actor), audit.field(r.db_role::text), audit.field(r.action),
                             audit.field(r.table_name), audit.field(r.feature_code),
                             audit.field(r.changes::text), audit.field(r.detail::text),
                             audit.field(r.request_id), audit.field(r.client_addr), audit.field(r.algorithm))
        $f$;
        COMMENT ON FUNCTION audit.canonical(audit.log) IS '规范文本: 哈希的输入 (accounts/audit.py 同样计算)';

        CREATE FUNCTION audit.chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
            SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE
            head audit.chain_head;
            who name := audit.caller();
        BEGIN
            SELECT * INTO head FROM audit.chain_head FOR UPDATE;
            NEW.id := head.last_id + 1;
            NEW.at := clock_timestamp();
            NEW.db_role := who;
            NEW.actor := audit.actor_of(who, NEW.actor);
            NEW.request_id := coalesce(nullif(current_setting('qiwang.request_id', true), ''), NEW.request_id);
            NEW.client_addr := coalesce(nullif(current_setting('qiwang.client_addr', true), ''), NEW.client_addr);
            NEW.algorithm := head.algorithm;
            NEW.prev_hash := head.last_hash;
            NEW.hash := public.digest(coalesce(head.last_hash, ''::bytea) || convert_to(audit.canonical(NEW), 'UTF8'),
                                      head.algorithm);
            UPDATE audit.chain_head SET last_id = NEW.id, last_hash = NEW.hash;
            RETURN NEW;
        END $f$;
        CREATE TRIGGER chain BEFORE INSERT ON audit.log FOR EACH ROW EXECUTE FUNCTION audit.chain();

        CREATE FUNCTION audit.refuse() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            RAISE EXCEPTION '%: the audit log is append-only (% refused)', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP
                USING ERRCODE = '42501';
        END $f$;
        CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.log FOR EACH ROW EXECUTE FUNCTION audit.refuse();
        CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.log FOR EACH STATEMENT
            EXECUTE FUNCTION audit.refuse();
        -- the head moves only with a new row (its UPDATE runs inside the trigger audit.chain)
        CREATE TRIGGER moved_by_chain_only BEFORE UPDATE OR DELETE ON audit.chain_head FOR EACH ROW
            WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION audit.refuse();
        CREATE TRIGGER moved_by_chain_only_truncate BEFORE TRUNCATE ON audit.chain_head FOR EACH STATEMENT
            EXECUTE FUNCTION audit.refuse();

        CREATE FUNCTION audit.append(action text, detail jsonb DEFAULT NULL, actor text DEFAULT NULL,
                                     client_addr text DEFAULT NULL, once_within interval DEFAULT NULL)
            RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
        DECLARE
            who text := audit.actor_of(audit.caller(), append.actor);
            made bigint;
        BEGIN
            IF append.action IS NULL OR append.action !~ '^[a-z][a-z_]{{1,39}}$' THEN
                RAISE EXCEPTION 'action: % is not an audit action (lower-case letters and _)', append.action
                    USING ERRCODE = '22023';
            END IF;
            IF once_within IS NOT NULL AND EXISTS (
                    SELECT FROM audit.log l WHERE l.actor = who AND l.action = append.action
                       AND l.at > clock_timestamp() - once_within) THEN
                RETURN NULL;
            END IF;
            INSERT INTO audit.log (actor, action, detail, client_addr)
                VALUES (who, append.action, append.detail, append.client_addr) RETURNING id INTO made;
            RETURN made;
        END $f$;
        COMMENT ON FUNCTION audit.append(text, jsonb, text, text, interval) IS
            '记一条审计: 操作, 详情; actor 只对非账号角色有效; once_within: 同一操作人同一操作在此时段内已有则不记';
        REVOKE ALL ON FUNCTION audit.append(text, jsonb, text, text, interval) FROM PUBLIC;

        -- Personal data as every published view shows it (0011): 张**, 138****0000, an address cut
        -- before the house number, a credit code's first and last 4 characters.
        CREATE FUNCTION audit.masked(r jsonb, masks jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE
            SET search_path = pg_catalog, pg_temp AS $f$
            SELECT CASE WHEN r IS NULL OR masks = '{{}}'::jsonb THEN r ELSE r || coalesce(jsonb_object_agg(m.key, to_jsonb(
                       CASE m.value WHEN 'name' THEN published.mask_name(r ->> m.key)
                                    WHEN 'phone' THEN published.mask_phone(r ->> m.key)
                                    WHEN 'address' THEN published.mask_address(r ->> m.key)
                                    WHEN 'credit_code' THEN published.mask_credit_code(r ->> m.key) END)), '{{}}'::jsonb)
                   END
              FROM jsonb_each_text(masks) m WHERE r ? m.key
        $f$;

        -- Row triggers of the watched tables. Arguments: key column, geometry columns, hidden
        -- columns (byte strings, secrets), columns whose change alone is not worth a row, masks
        -- ({{column: name | phone | address | credit_code}}).
        CREATE FUNCTION audit.record_change() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
            SET search_path = pg_catalog, public, pg_temp AS $f$
        DECLARE
            key_column text := TG_ARGV[0];
            geometries text[] := TG_ARGV[1]::text[];
            hidden text[] := TG_ARGV[2]::text[];
            quiet text[] := TG_ARGV[3]::text[];
            masks jsonb := TG_ARGV[4]::jsonb;
            old_row jsonb;
            new_row jsonb;
            changed jsonb;
        BEGIN
            IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
            IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
            IF TG_OP = 'UPDATE' THEN
                -- compared as they are, shown masked
                SELECT coalesce(jsonb_object_agg(n.key, CASE WHEN n.key = ANY (geometries || hidden)
                                                            THEN '"changed"'::jsonb
                                                            ELSE jsonb_build_array(shown_old -> n.key, shown_new -> n.key) END),
                                '{{}}'::jsonb)
                  INTO changed
                  FROM jsonb_each(new_row) n, audit.masked(old_row, masks) shown_old, audit.masked(new_row, masks) shown_new
                 WHERE n.value IS DISTINCT FROM old_row -> n.key;
                IF changed - quiet = '{{}}'::jsonb THEN
                    RETURN NULL;
                END IF;
            ELSE
                changed := audit.masked(coalesce(new_row, old_row), masks);
                SELECT changed || coalesce(jsonb_object_agg(c, CASE WHEN c = ANY (geometries) THEN '"(geometry)"'::jsonb
                                                                    ELSE '"(hidden)"'::jsonb END), '{{}}'::jsonb)
                  INTO changed FROM unnest(geometries || hidden) c WHERE changed -> c <> 'null'::jsonb;
            END IF;
            INSERT INTO audit.log (actor, action, table_name, feature_code, changes)
                VALUES (NULL, lower(TG_OP),
                        CASE WHEN TG_TABLE_SCHEMA = 'public' THEN TG_TABLE_NAME ELSE TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME END,
                        coalesce(new_row, old_row) ->> key_column, changed);
            RETURN NULL;
        END $f$;
        CREATE FUNCTION audit.record_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
            SET search_path = pg_catalog, pg_temp AS $f$
        BEGIN
            INSERT INTO audit.log (actor, action, table_name)
                VALUES (NULL, 'truncate',
                        CASE WHEN TG_TABLE_SCHEMA = 'public' THEN TG_TABLE_NAME ELSE TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME END);
            RETURN NULL;
        END $f$;

        -- Who is not recorded row by row: the ingest, and the owner's bulk loads (qiwang.bulk = 'on';
        -- an account's role setting it is recorded all the same).
        CREATE FUNCTION audit.watch(t regclass, key_column text DEFAULT NULL, secrets text[] DEFAULT '{{}}',
                                    quiet text[] DEFAULT '{{}}', masks jsonb DEFAULT '{{}}')
            RETURNS void LANGUAGE plpgsql AS $f$
        DECLARE
            geometries text[];
            bytes text[];
            staff jsonb;
            key text;
            skip text := format('current_user <> %L AND (current_setting(%L, true) IS DISTINCT FROM %L '
                                'OR NOT pg_has_role(%L, %L))', 'qiwang_ingest', 'qiwang.bulk', 'on',
                                '{OWNER}', 'MEMBER');
        BEGIN
            SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum)
                                FILTER (WHERE a.atttypid = to_regtype('geometry')), '{{}}'),
                   coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.atttypid = 'bytea'::regtype),
                            '{{}}')
              INTO geometries, bytes
              FROM pg_attribute a WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped;
            -- machine-kept latest values (last_reading_at, last_used_at, …) alone make no row
            SELECT quiet || coalesce(array_agg(a.attname::text), '{{}}')
              INTO quiet
              FROM pg_attribute a
             WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped AND a.attname ~ '^last_';
            -- people's names and phones, wherever they are (responsible_person, inspector_phone, …)
            SELECT coalesce(jsonb_object_agg(a.attname, CASE WHEN a.attname ~ 'phone$' THEN 'phone' ELSE 'name' END),
                            '{{}}')
              INTO staff
              FROM pg_attribute a
             WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'text'::regtype
               AND (a.attname ~ '(phone|_person)$' OR a.attname = 'inspector');
            key := coalesce(key_column,
                            (SELECT 'code' FROM pg_attribute WHERE attrelid = t AND attname = 'code' AND NOT attisdropped),
                            (SELECT a.attname FROM pg_index i JOIN pg_attribute a
                                 ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                              WHERE i.indrelid = t AND i.indisprimary));
            EXECUTE format('DROP TRIGGER IF EXISTS audit_change ON %s', t);
            EXECUTE format('DROP TRIGGER IF EXISTS audit_truncate ON %s', t);
            EXECUTE format('CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW WHEN (%s) '
                           'EXECUTE FUNCTION audit.record_change(%L, %L, %L, %L, %L)',
                           t, skip, key, geometries, bytes || secrets, quiet, staff || masks);
            EXECUTE format('CREATE TRIGGER audit_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT WHEN (%s) '
                           'EXECUTE FUNCTION audit.record_truncate()', t, skip);
        END $f$;
        COMMENT ON FUNCTION audit.watch(regclass, text, text[], text[], jsonb) IS
            '为表装审计触发器 (新表或新几何字段须再调用)';
        REVOKE ALL ON FUNCTION audit.watch(regclass, text, text[], text[], jsonb) FROM PUBLIC;

        DO $$
        DECLARE t text;
        BEGIN
            FOR t IN
                SELECT c.relname FROM pg_class c
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'enterprise_code' AND NOT a.attisdropped
                 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                   AND c.relname NOT IN ({not_watched})
                 ORDER BY 1
            LOOP
                PERFORM audit.watch(t::regclass, masks => CASE WHEN t = 'customer' THEN '{CUSTOMER_MASKS}'::jsonb
                                                               ELSE '{{}}'::jsonb END);
            END LOOP;
        END $$;
        {watch_auth}

        GRANT USAGE ON SCHEMA audit TO qiwang_auditor, {APPENDERS};
        GRANT SELECT ON audit.log, audit.chain_head TO qiwang_auditor;
        GRANT EXECUTE ON FUNCTION audit.append(text, jsonb, text, text, interval) TO {APPENDERS};

        -- Only a superuser may change the audit schema's objects (a trigger disabled by the owner
        -- would let it rewrite rows); needs a superuser to set up, like LEAKPROOF in 0016.
        RESET ROLE;
        DO $$
        BEGIN
            IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                RAISE WARNING 'not a superuser: the owner can still disable the audit log''s triggers; ask the DBA '
                              'to run migration 0017''s event triggers (audit_guard_ddl, audit_guard_drop)';
                RETURN;
            END IF;
            -- beside the audit schema, the superuser's: dropping that schema (its owner may) cannot take them along
            CREATE SCHEMA audit_guard;
            COMMENT ON SCHEMA audit_guard IS '审计日志的守护: 只有超级用户能改动 audit 模式的对象';
            CREATE FUNCTION audit_guard.guard_ddl() RETURNS event_trigger LANGUAGE plpgsql
                SET search_path = pg_catalog, pg_temp AS $f$
            BEGIN
                IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                   AND EXISTS (SELECT FROM pg_event_trigger_ddl_commands()
                                WHERE schema_name IN ('audit', 'audit_guard')) THEN
                    RAISE EXCEPTION 'audit: the audit log''s objects are changed by a superuser only'
                        USING ERRCODE = '42501';
                END IF;
            END $f$;
            CREATE FUNCTION audit_guard.guard_drop() RETURNS event_trigger LANGUAGE plpgsql
                SET search_path = pg_catalog, pg_temp AS $f$
            BEGIN
                IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                   AND EXISTS (SELECT FROM pg_event_trigger_dropped_objects()
                                WHERE schema_name IN ('audit', 'audit_guard')
                                   OR (object_type = 'schema' AND object_name IN ('audit', 'audit_guard'))) THEN
                    RAISE EXCEPTION 'audit: the audit log''s objects are dropped by a superuser only'
                        USING ERRCODE = '42501';
                END IF;
            END $f$;
            CREATE EVENT TRIGGER audit_guard_ddl ON ddl_command_end EXECUTE FUNCTION audit_guard.guard_ddl();
            CREATE EVENT TRIGGER audit_guard_drop ON sql_drop EXECUTE FUNCTION audit_guard.guard_drop();
        END $$;
        SET ROLE {OWNER};
    """)


def downgrade() -> None:
    op.execute(f"""
        RESET ROLE;   -- the event triggers let only a superuser drop the audit schema
        DROP EVENT TRIGGER IF EXISTS audit_guard_ddl;
        DROP EVENT TRIGGER IF EXISTS audit_guard_drop;
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT tgrelid::regclass AS t, tgname FROM pg_trigger
                      WHERE tgname IN ('audit_change', 'audit_truncate')
            LOOP
                EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.t);
            END LOOP;
        END $$;
        DROP SCHEMA IF EXISTS audit_guard CASCADE;
        DROP SCHEMA audit CASCADE;
        SET ROLE {OWNER};
    """)
