"""Residents' addresses masked fail-closed.

0011 cut an address at the first house number written as digits followed by 号/号楼/栋/幢/座/单元/
层/室/户. Addresses written otherwise (幸福小区5-2-301, 幸福里3#楼2门302, 园林路A座1201, 胜利路88-1)
were published whole. Now, whenever the cut address still holds a digit, a Latin letter or '#', it
is not trusted and the resident's street and community (their own columns) are published instead.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""
from alembic import op

from migrations.fragments import published_view

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

CREDIT_CODE = ("CASE WHEN t.user_type = 1 OR t.credit_code LIKE '92%' "
               "THEN published.mask_credit_code(t.credit_code) ELSE t.credit_code END")


def upgrade() -> None:
    masks = {
        "address": "CASE WHEN t.user_type = 1 THEN published.mask_address(t.address, t.street, t.community) "
                   "ELSE t.address END",
        "credit_code": CREDIT_CODE,
    }
    op.execute(f"""
        CREATE FUNCTION published.mask_address(address text, street text, community text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            RETURN CASE WHEN address IS NULL THEN NULL
                        WHEN published.mask_address(address) ~ '[0-9０-９#＃A-Za-zＡ-Ｚａ-ｚ]'
                            THEN coalesce(street, '') || coalesce(community, '')
                        ELSE published.mask_address(address) END;
        COMMENT ON FUNCTION published.mask_address(text, text, text) IS
            '住户地址脱敏 (不漏): 去掉门牌号后仍含数字、字母或 # 时, 只给街道与社区';
        {published_view(op.get_bind(), "customer", masks)}
    """)


def downgrade() -> None:
    masks = {
        "address": "CASE WHEN t.user_type = 1 THEN published.mask_address(t.address) ELSE t.address END",
        "credit_code": CREDIT_CODE,
    }
    op.execute(f"""
        {published_view(op.get_bind(), "customer", masks)}
        DROP FUNCTION published.mask_address(text, text, text);
    """)
