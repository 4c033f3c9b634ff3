"""A CDR as `GET /api/v1/cdrs/{id}` shows it: for the API and for what hooks send, so
that a receiver gets exactly what the API would have answered."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from cdrlog.core.exports import shown
from cdrlog.service.dispatcher import Rendered, Renderer
from cdrlog.store.reader import Reader
from cdrlog.web import schemas


def cdr_detail(found: dict[str, Any], zone: ZoneInfo) -> schemas.CdrDetail:
    """`Reader.cdr`'s answer as the API's model."""
    events = [schemas.EventOut(**shown(e, zone)) for e in found["events"]]
    fields = {name: value for name, value in found.items() if name != "events"}
    return schemas.CdrDetail(**shown(fields, zone), events=events)


def renderer(reader: Reader, zone: ZoneInfo) -> Renderer:
    """What the dispatcher sends of a CDR, read with its version (any team's)."""

    def render(cdr_id: int) -> Rendered | None:
        found = reader.cdr(cdr_id, None)
        if found is None:
            return None
        body = cdr_detail(found, zone).model_dump(mode="json")
        return Rendered(int(found["version"]), str(found["status"]), body)

    return render
