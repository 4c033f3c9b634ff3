"""The CDR: one call's record, and the list of its columns every other place derives
from or is checked against. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime

from cdrlog.core.rules import Disposition, Status


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call's record, as the contract's `cdr` table holds it (without storage ids).

    `duration`, `billsec` and `hold_seconds` are None while the call is open: they are
    not known yet.

    These fields, in this order, are the one list of a CDR's columns (`CDR_COLUMN_OF`
    gives their column names): the row converters and the export columns are derived
    from them, and tests hold the `cdr` table and the API's schema to them.
    """

    team: str
    diallogid: str
    calltype: str
    target: str
    src: str | None
    dst: str | None
    agentno: str | None
    starttime: datetime
    answertime: datetime | None
    endtime: datetime | None
    duration: int | None
    billsec: int | None
    disposition: Disposition
    status: Status
    did: str | None = None
    agent_group: str | None = None
    hold_seconds: int | None = None
    transferred_to: str | None = None


# The contract names the team `orgidentity`; every other column is named as its field.
_RENAMED = {"team": "orgidentity"}

CDR_COLUMN_OF: Mapping[str, str] = {
    field.name: _RENAMED.get(field.name, field.name) for field in fields(Cdr)
}
"""Each `Cdr` field's column, in field order."""

RECORD_COLUMNS = tuple(CDR_COLUMN_OF.values())
"""The `cdr` columns a record fills (all but the table's row id and write times), in
the order the table, the exports and the API show them."""
