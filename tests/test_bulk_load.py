"""The COPY path every bulk load goes through keeps text exactly as it was."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from db.bulk_load import copy_frame, to_copy_text

TRICKY = ['say "hi"', "C:\\new", "x\\Ny", "a\tb", "line1\nline2", "", None, "中文,逗号", "\\"]


def test_copy_keeps_quotes_backslashes_tabs_newlines_and_nulls(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE tricky (k int, v text) ON COMMIT DROP"))
        written = copy_frame(conn, "tricky", to_copy_text(pd.DataFrame({"k": range(len(TRICKY)), "v": TRICKY})))
        stored = conn.execute(sa.text("SELECT v FROM tricky ORDER BY k")).scalars().all()
    assert written == len(TRICKY)
    assert stored == TRICKY
