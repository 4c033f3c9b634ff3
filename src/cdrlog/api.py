"""GET /api/v1/cdrs: CDRs as JSON or CSV, filtered. Read-only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Engine, Row, select

from cdrlog.database import read_only
from cdrlog.storage import cdr

router = APIRouter(prefix="/api/v1", tags=["cdrs"])

COLUMNS = (
    "id",
    "orgidentity",
    "diallogid",
    "calltype",
    "target",
    "src",
    "dst",
    "agentno",
    "starttime",
    "answertime",
    "endtime",
    "duration",
    "billsec",
    "disposition",
    "status",
    "created_at",
    "updated_at",
)
TIME_COLUMNS = frozenset({"starttime", "answertime", "endtime", "created_at", "updated_at"})


class CdrOut(BaseModel):
    """One CDR. Times are ISO-8601 with the display zone's offset; seconds are integers."""

    id: int
    orgidentity: str
    diallogid: str
    calltype: str
    target: str
    src: str | None
    dst: str | None
    agentno: str | None
    starttime: str
    answertime: str | None
    endtime: str | None
    duration: int | None
    billsec: int | None
    disposition: str
    status: str
    created_at: str
    updated_at: str


class CdrPage(BaseModel):
    count: int
    cdrs: list[CdrOut]


@dataclass(frozen=True, slots=True)
class Reader:
    engine: Engine
    display_zone: ZoneInfo

    def cdrs(self, conditions: Sequence[ColumnElement[bool]], limit: int) -> list[Row[Any]]:
        query = select(cdr).where(*conditions).order_by(cdr.c.starttime.desc(), cdr.c.id.desc())
        with self.engine.connect() as connection:
            return list(read_only(connection).execute(query.limit(limit)))


def shown(row: Row[Any], zone: ZoneInfo) -> dict[str, Any]:
    """A row as readers see it: times in `zone`, with offset."""
    values = dict(row._mapping)
    for name in TIME_COLUMNS:
        moment: datetime | None = values[name]
        values[name] = None if moment is None else moment.astimezone(zone).isoformat()
    return values


@router.get(
    "/cdrs",
    response_model=CdrPage,
    summary="CDRs, newest first, filtered; format=csv for a spreadsheet",
    responses={200: {"content": {"text/csv": {}}}},
)
def list_cdrs(
    request: Request,
    orgidentity: Annotated[str | None, Query(description="team")] = None,
    agentno: Annotated[str | None, Query(description="agent number")] = None,
    disposition: Annotated[str | None, Query(description="ANSWER, NOANSWER, BUSY, ...")] = None,
    calltype: Annotated[str | None, Query(description="dialout or dialin")] = None,
    start_from: Annotated[
        datetime | None, Query(alias="from", description="starttime at or after (ISO-8601)")
    ] = None,
    start_to: Annotated[
        datetime | None, Query(alias="to", description="starttime before (ISO-8601)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    reader: Reader = request.app.state.reader
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (cdr.c.orgidentity, orgidentity),
        (cdr.c.agentno, agentno),
        (cdr.c.disposition, disposition.upper() if disposition else None),
        (cdr.c.calltype, calltype.lower() if calltype else None),
    ):
        if value is not None:
            conditions.append(column == value)
    if start_from is not None:
        conditions.append(cdr.c.starttime >= _aware(start_from, reader.display_zone))
    if start_to is not None:
        conditions.append(cdr.c.starttime < _aware(start_to, reader.display_zone))
    rows = [shown(row, reader.display_zone) for row in reader.cdrs(conditions, limit)]
    if format == "csv":
        return StreamingResponse(
            _csv_lines(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'},
        )
    return CdrPage(count=len(rows), cdrs=[CdrOut(**row) for row in rows])


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    """A time given without offset is read in the display zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _csv_lines(rows: list[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[name] is None else row[name] for name in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
