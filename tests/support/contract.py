"""The contract's CDR columns, as the API must show them: the export columns, which the
README's table of the `cdr` table pins (tests/store/test_columns.py)."""

from __future__ import annotations

from cdrlog.core.exports import CDR_COLUMNS

CONTRACT_COLUMNS = list(CDR_COLUMNS)
