"""Telemetry: RTUs and other reporting devices, quarantine, alarm handling record, device status
history, regulator outbox.

- `device` rows with a `telemetry_type` (rtu / alarm / meter) report like sentries do: reporting
  interval, status (dt_devicestatus) and latest values live on the row.
- `telemetry_device` is the registry the ingest reads: sentries and reporting devices in one view,
  each with the pressure class its pressure rules use.
- `reading` is keyed by (enterprise, device type, device code, ts): two enterprises may number their
  devices alike.
- `reading_quarantine` keeps every message that could not be stored, raw, with the reason.
- `alarm` episodes: one open episode per (device, measure, direction) at a time, enforced by a
  partial unique index; `alarm_event` is the immutable handling record (append-only, each row
  hash-chained to the one before it for the same alarm).
- `device_status_log` records every status change (offline, alarm levels) for offline rates.
- `outbox` holds records for the regulator's endpoint until it has taken them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""
from alembic import op

from migrations.fragments import comments

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE device
            ADD COLUMN telemetry_type       text CHECK (telemetry_type IN ('rtu', 'alarm', 'meter')),
            ADD COLUMN pressure_class       smallint REFERENCES dict.dt_pipe_pressure_type,
            ADD COLUMN reporting_interval_s integer CHECK (reporting_interval_s > 0),
            ADD COLUMN status               smallint REFERENCES dict.dt_devicestatus,
            ADD COLUMN last_reading_at      timestamptz,
            ADD COLUMN last_ch4_lel         real,
            ADD COLUMN last_pressure_kpa    real,
            ADD COLUMN last_temperature_c   real,
            ADD COLUMN last_battery_v       real,
            ADD COLUMN last_flow_m3h        real,
            ADD CONSTRAINT reporting_device_is_whole CHECK (
                telemetry_type IS NULL OR (reporting_interval_s IS NOT NULL AND status IS NOT NULL));
        {comments("device", "设备设施数字化档案 (000 appendix A.1 #7): 其他设备, 含场站 RTU 等上报设备", {
            "telemetry_type": "上报设备类型 rtu/alarm/meter", "pressure_class": "监测压力等级",
            "reporting_interval_s": "上报周期 (s)", "status": "状态 dt_devicestatus",
            "last_reading_at": "最新上报时间", "last_ch4_lel": "最新甲烷浓度 (%LEL)",
            "last_pressure_kpa": "最新压力 (kPa)", "last_temperature_c": "最新温度 (°C)",
            "last_battery_v": "最新电池电压 (V)", "last_flow_m3h": "最新流量 (Nm³/h)"})}

        CREATE VIEW telemetry_device AS
            SELECT 'sentry'::text AS device_type, s.id, s.code, s.enterprise_code, s.admin_code,
                   p.pressure_class, s.reporting_interval_s, s.status, s.last_reading_at, s.geom
              FROM sentry s LEFT JOIN pipe p ON p.id = s.pipe_id
            UNION ALL
            SELECT d.telemetry_type, d.id, d.code, d.enterprise_code, d.admin_code,
                   d.pressure_class, d.reporting_interval_s, d.status, d.last_reading_at, d.geom
              FROM device d WHERE d.telemetry_type IS NOT NULL;
        COMMENT ON VIEW telemetry_device IS
            '上报设备登记: 管网哨兵与 RTU/报警器/表具; pressure_class 为压力报警规则所用的压力等级';

        ALTER TABLE reading DROP CONSTRAINT reading_pkey;
        ALTER TABLE reading ADD PRIMARY KEY (enterprise_code, device_type, device_code, ts);

        CREATE TABLE reading_quarantine (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            received_at      timestamptz NOT NULL,
            source           text NOT NULL,
            topic            text,
            payload          bytea NOT NULL,
            field            text,
            reason           text NOT NULL,
            enterprise_code  text,
            device_type      text,
            device_code      text
        );
        CREATE INDEX reading_quarantine_received ON reading_quarantine (received_at);
        {comments("reading_quarantine", "隔离的监测数据: 无法入库的原始报文及原因", {
            "received_at": "接收时间", "source": "来源 (mqtt 主题 / modbus 设备)", "topic": "MQTT 主题或 Modbus 地址",
            "payload": "原始报文", "field": "出错字段", "reason": "原因",
            "enterprise_code": "主题中的企业编码", "device_type": "主题中的设备类型",
            "device_code": "主题中的设备编号"})}

        ALTER TABLE alarm
            ADD COLUMN device_id  bigint REFERENCES device ON DELETE SET NULL,
            ADD COLUMN direction  text NOT NULL DEFAULT 'high' CHECK (direction IN ('high', 'low')),
            ADD COLUMN peak_value double precision,
            ADD COLUMN cleared_at timestamptz,
            ADD CONSTRAINT closed_when_cleared CHECK (state <> 'closed' OR cleared_at IS NOT NULL);
        CREATE UNIQUE INDEX alarm_one_open_episode ON alarm (enterprise_code, device_type, device_code, measure, direction)
            WHERE cleared_at IS NULL;
        CREATE SEQUENCE alarm_code_seq;
        {comments("alarm", "报警 (压力/浓度), 闭环处置 raised → acknowledged → dispatched → resolved → closed", {
            "device_id": "上报设备 (RTU 等)", "direction": "越限方向 high 超上限 / low 低于下限",
            "peak_value": "本次报警最不利值", "cleared_at": "恢复正常时间 (空: 仍在报警)"})}

        CREATE TABLE alarm_event (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            alarm_id    bigint NOT NULL REFERENCES alarm ON DELETE RESTRICT,
            at          timestamptz NOT NULL,
            action      text NOT NULL CHECK (action IN ('raised', 'escalated', 'eased', 'cleared',
                            'acknowledged', 'dispatched', 'resolved', 'closed')),
            state       text NOT NULL,
            level       smallint,
            value       double precision,
            actor       text NOT NULL,
            note        text,
            recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            prev_hash   bytea,
            hash        bytea NOT NULL
        );
        CREATE INDEX alarm_event_alarm ON alarm_event (alarm_id, id);
        {comments("alarm_event", "报警处置记录 (不可修改): 每一步的时间、人、说明, 逐条哈希链接", {
            "alarm_id": "报警", "at": "发生时间", "action": "动作", "state": "动作后的处置状态",
            "level": "报警等级 dt_devicestatus", "value": "监测值", "actor": "操作人 (ingest: 系统)",
            "note": "说明", "recorded_at": "记录时间", "prev_hash": "上一条记录的哈希",
            "hash": "本条哈希 sha256(prev_hash || 内容)"})}

        CREATE FUNCTION alarm_event_chain() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Serialise writers of one alarm's record so that the chain has no forks.
            PERFORM 1 FROM alarm WHERE id = NEW.alarm_id FOR UPDATE;
            SELECT hash INTO NEW.prev_hash FROM alarm_event WHERE alarm_id = NEW.alarm_id ORDER BY id DESC LIMIT 1;
            NEW.hash := sha256(coalesce(NEW.prev_hash, ''::bytea) || convert_to(concat_ws('|',
                NEW.alarm_id, to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), NEW.action,
                NEW.state, NEW.level, NEW.value, NEW.actor, NEW.note), 'UTF8'));
            RETURN NEW;
        END $$;
        CREATE TRIGGER alarm_event_chained BEFORE INSERT ON alarm_event
            FOR EACH ROW EXECUTE FUNCTION alarm_event_chain();
        CREATE FUNCTION alarm_event_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'alarm_event is an immutable handling record: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER alarm_event_append_only BEFORE UPDATE OR DELETE ON alarm_event
            FOR EACH ROW EXECUTE FUNCTION alarm_event_is_immutable();

        CREATE TABLE device_status_log (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_type     text NOT NULL,
            device_code     text NOT NULL,
            enterprise_code text NOT NULL,
            admin_code      text NOT NULL,
            at              timestamptz NOT NULL,
            status_from     smallint NOT NULL REFERENCES dict.dt_devicestatus,
            status_to       smallint NOT NULL REFERENCES dict.dt_devicestatus
        );
        CREATE INDEX device_status_log_device ON device_status_log (enterprise_code, device_type, device_code, at);
        CREATE INDEX device_status_log_at ON device_status_log (at);
        {comments("device_status_log", "设备状态变化记录 (掉线、报警等级): 掉线率统计所用", {
            "device_type": "设备类型", "device_code": "设备编号", "enterprise_code": "企业唯一编码",
            "admin_code": "行政区划代码", "at": "变化时间", "status_from": "原状态 dt_devicestatus",
            "status_to": "新状态 dt_devicestatus"})}

        CREATE TABLE outbox (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at  timestamptz NOT NULL,
            kind        text NOT NULL,
            payload     jsonb NOT NULL,
            sent_at     timestamptz,
            attempts    integer NOT NULL DEFAULT 0,
            last_error  text
        );
        CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
        {comments("outbox", "上报监管平台的待发记录: 链路中断时至少保留 90 天, 恢复后按顺序补发", {
            "created_at": "产生时间", "kind": "记录类型 (readings/alarm/alarm_event/device_status)",
            "payload": "内容", "sent_at": "监管平台确认接收时间", "attempts": "发送次数",
            "last_error": "最近一次发送失败原因"})}
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE outbox;
        DROP TABLE device_status_log;
        DROP TABLE alarm_event;
        DROP FUNCTION alarm_event_is_immutable();
        DROP FUNCTION alarm_event_chain();
        DROP SEQUENCE alarm_code_seq;
        DROP INDEX alarm_one_open_episode;
        ALTER TABLE alarm DROP CONSTRAINT closed_when_cleared, DROP COLUMN cleared_at, DROP COLUMN peak_value,
            DROP COLUMN direction, DROP COLUMN device_id;
        DROP TABLE reading_quarantine;
        ALTER TABLE reading DROP CONSTRAINT reading_pkey;
        ALTER TABLE reading ADD PRIMARY KEY (device_code, ts);
        DROP VIEW telemetry_device;
        ALTER TABLE device DROP CONSTRAINT reporting_device_is_whole, DROP COLUMN last_flow_m3h,
            DROP COLUMN last_battery_v, DROP COLUMN last_temperature_c, DROP COLUMN last_pressure_kpa,
            DROP COLUMN last_ch4_lel, DROP COLUMN last_reading_at, DROP COLUMN status,
            DROP COLUMN reporting_interval_s, DROP COLUMN pressure_class, DROP COLUMN telemetry_type;
        """
    )
