"""Administrative divisions and gas enterprises (appendix A.1 #1).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op

from migrations.fragments import STORAGE_SRID, comments, spatial_index

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE admin_division (
            admin_code   t_admin_code PRIMARY KEY,
            name         text NOT NULL,
            level        text NOT NULL CHECK (level IN ('province', 'city', 'county')),
            parent_code  t_admin_code REFERENCES admin_division,
            geom         geometry(MultiPolygon, {STORAGE_SRID})
        );
        {spatial_index("admin_division")}
        {comments("admin_division", "行政区划 (GB/T 2260): province, city, county", {
            "admin_code": "行政区划代码", "name": "名称", "level": "级别 province/city/county",
            "parent_code": "上级行政区划代码", "geom": "边界"})}

        CREATE TABLE enterprise (
            enterprise_code         t_enterprise_code PRIMARY KEY,
            name                    text NOT NULL,
            admin_code              t_admin_code NOT NULL REFERENCES admin_division,
            address                 text NOT NULL,
            legal_representative    text NOT NULL,
            business_license_type   text NOT NULL,
            credit_code             text NOT NULL UNIQUE
                CONSTRAINT credit_code_is_gb32100 CHECK (credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{{18}}$'),
            gas_license_no          text NOT NULL,
            gas_license_issued_on   date NOT NULL,
            gas_license_expires_on  date NOT NULL,
            operating_area          text NOT NULL,
            parent_company          text,
            customer_count          integer NOT NULL DEFAULT 0 CHECK (customer_count >= 0),
            registered_capital_wan  numeric CHECK (registered_capital_wan >= 0),
            founded_on              date,
            nature                  smallint REFERENCES dict.dt_enterprise_nature,
            status                  smallint NOT NULL DEFAULT 0 REFERENCES dict.dt_enterprise_status,
            enterprise_type         smallint NOT NULL DEFAULT 12 REFERENCES dict.dt_deptype,
            gas_class               smallint NOT NULL DEFAULT 1 REFERENCES dict.dt_gasclass,
            geom                    geometry(PointZ, {STORAGE_SRID}),
            created_at              timestamptz NOT NULL DEFAULT now(),
            updated_at              timestamptz NOT NULL DEFAULT now(),
            -- the code's first six digits are the county-level division it is registered in
            CONSTRAINT enterprise_code_matches_division CHECK (left(enterprise_code, 6) = admin_code),
            CONSTRAINT gas_license_dates CHECK (gas_license_expires_on > gas_license_issued_on)
        );
        {spatial_index("enterprise")}
        {comments("enterprise", "燃气企业数字化档案 (000 appendix A.1 #1)", {
            "enterprise_code": "企业唯一编码", "name": "企业名称", "admin_code": "行政区域",
            "address": "公司地址", "legal_representative": "法定代表人",
            "business_license_type": "营业执照类型", "credit_code": "统一社会信用代码",
            "gas_license_no": "燃气经营许可证号", "gas_license_issued_on": "燃气经营许可证发证时间",
            "gas_license_expires_on": "燃气经营许可证到期时间", "operating_area": "经营区域",
            "parent_company": "所属总公司", "customer_count": "燃气用户数量",
            "registered_capital_wan": "注册资本 (万元)", "founded_on": "成立日期",
            "nature": "企业性质 dt_enterprise_nature", "status": "企业经营状态 dt_enterprise_status",
            "enterprise_type": "燃气企业类型 dt_deptype", "gas_class": "气源类型 dt_gasclass",
            "geom": "公司位置"})}
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE enterprise")
    op.execute("DROP TABLE admin_division")
