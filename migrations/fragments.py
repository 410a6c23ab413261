"""SQL pieces shared by several migrations.

Frozen once a migration that uses them has been released: a later schema change gets a new
migration (and, if needed, a new fragment), never an edit here.
"""

STORAGE_SRID = 4550  # CGCS2000 / 3-degree Gauss-Kruger CM 123E (Anshan); Z = 1985 heights

# Every business feature: owner enterprise and division, so that access scopes and regulator
# tiers (enterprise → county → city → province) can filter on plain columns.
BUSINESS_COLUMNS = """
    enterprise_code t_enterprise_code NOT NULL REFERENCES enterprise,
    admin_code      t_admin_code NOT NULL REFERENCES admin_division,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
"""

# Appendix A.1 #7 设备设施数字化档案: mandatory fields of every device.
DEVICE_COLUMNS = """
    name                text NOT NULL,
    model               text NOT NULL,
    manufacturer        text NOT NULL,
    inspected_on        date,
    next_inspection_on  date,
    responsible_person  text NOT NULL,
    responsible_phone   text NOT NULL,
    commissioned_on     date NOT NULL,
    remarks             text
"""

BUSINESS_COMMENTS = {
    "enterprise_code": "企业唯一编码",
    "admin_code": "行政区划代码",
    "created_at": "创建时间",
    "updated_at": "更新时间",
}

DEVICE_COMMENTS = {
    "name": "设备名称",
    "model": "设备型号",
    "manufacturer": "生产厂家",
    "inspected_on": "年检时间",
    "next_inspection_on": "下次年检时间",
    "responsible_person": "负责人",
    "responsible_phone": "负责人联系电话",
    "commissioned_on": "投入使用日期",
    "remarks": "备注",
}


def comments(table: str, table_zh: str, columns: dict[str, str]) -> str:
    """COMMENT statements for a table and its columns (Chinese names, shown by QGIS and the API)."""
    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    lines = [f"COMMENT ON TABLE {table} IS {quote(table_zh)};"]
    lines += [f"COMMENT ON COLUMN {table}.{col} IS {quote(zh)};" for col, zh in columns.items()]
    return "\n".join(lines)


def spatial_index(table: str, column: str = "geom") -> str:
    return f"CREATE INDEX {table}_{column}_gist ON {table} USING gist ({column});"


def published_view(conn, table: str, masks: dict[str, str]) -> str:
    """SQL (re)creating `published.<table>`: the table's columns in their order, `masks` (column →
    SQL expression on alias t) in place of the raw values, every COMMENT copied.

    Generated from the catalogue (TEKSI style), so a migration that adds a column to a published
    table calls it again: a view is frozen to the columns its table had when it was made.
    security_invoker: row-level security on the table applies to whoever reads the view.
    """
    import sqlalchemy as sa

    rows = conn.execute(sa.text("""
        SELECT a.attname, coalesce(col_description(a.attrelid, a.attnum), '')
        FROM pg_attribute a
        WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
    """), {"t": f"public.{table}"}).all()
    unknown = set(masks) - {name for name, _ in rows}
    if unknown:
        raise ValueError(f"published.{table}: no column {sorted(unknown)} in {table}")

    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    select = ",\n    ".join(f'{masks[name]} AS "{name}"' if name in masks else f't."{name}"' for name, _ in rows)
    lines = [
        f"DROP VIEW IF EXISTS published.{table};",
        f"CREATE VIEW published.{table} WITH (security_invoker = true) AS SELECT\n    {select}\nFROM public.{table} t;",
        f"COMMENT ON VIEW published.{table} IS "
        f"{quote('公开图层 (个人信息已脱敏) of ' + table + ': ' + ', '.join(sorted(masks)) + ' masked')};",
    ]
    lines += [f'COMMENT ON COLUMN published.{table}."{name}" IS {quote(zh)};' for name, zh in rows if zh]
    return "\n".join(lines)
