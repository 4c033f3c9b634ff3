"""The intake pipeline: decode a push body, check each event, store the good ones and
keep the bad ones as dead letters. Every way in runs it: the Push event URLs, a replay
of files, an operator's retry of a dead letter, and the drain of the spool.

The rules every way in shares live here once:

- what a dead letter keeps of a body too large to store (`kept_of`);
- how one refused item of a batch is kept (`item_bytes`: alone, as JSON);
- the isolation policy (`Intake.store_each`): events stored together whose transaction
  fails for any reason but an outage are stored one by one, so one event never fails
  its neighbours; an event the database refuses (`DataError`) is refused like bad
  input, and an outage (`OUTAGE`) is raised for the caller to spool or answer 503.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from python_multipart import parse_form
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import Field, File
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.bodies import (
    MAX_FORM_FIELDS,
    BodyError,
    Decoded,
    Item,
    decode_form,
    decode_json,
    is_json,
    media_type,
    text_fields,
)
from cdrlog.core.events import FieldError, Rejection, fingerprint, parse_event
from cdrlog.service import metrics
from cdrlog.service.ingest import Ingestor
from cdrlog.service.settings import Settings
from cdrlog.store.deadletters import DeadLetter, KeptLetter

log = logging.getLogger(__name__)

# What a dead letter keeps of a body too large to store: enough to see what it was.
KEPT_OF_OVERSIZE = 64 * 1024
# A refused single event up to this size is kept whole; a larger one, in part.
KEPT_WHOLE = 256 * 1024
JSON_TYPE = "application/json"
# The database cannot be reached: nothing was stored, and trying again later may work.
OUTAGE = (OperationalError, InterfaceError)
VALUE_REFUSED = Rejection((FieldError("event", "a value is not acceptable to the database"),))


@dataclass(frozen=True, slots=True)
class Body:
    """One push body: its bytes, its content type, and the push URL's team (None:
    each event's `orgidentity`)."""

    data: bytes
    content_type: str | None
    team: str | None


class RetryRefused(Exception):
    """A dead letter that cannot be retried (kept only in part, or resolved already)."""


@dataclass(frozen=True, slots=True)
class Retried:
    """What a retry of a dead letter stored, and what it still refused (by item)."""

    id: int
    status: str
    stored: int
    duplicate: int
    errors: dict[str, Any]


def kept_of(data: bytes, whole: bool = True, keep_whole: int = 0) -> tuple[bytes, bool]:
    """What a dead letter keeps of a refused body, and whether that is only its start.
    Bodies up to `keep_whole` bytes are kept whole; larger ones (or one that did not
    all arrive, `whole=False`) only in their first `KEPT_OF_OVERSIZE` bytes."""
    kept = data if whole and len(data) <= keep_whole else data[:KEPT_OF_OVERSIZE]
    return kept, not whole or len(kept) < len(data)


def item_bytes(original: Any) -> bytes:
    """One item of a batch as a body of its own, so a refused item is kept alone."""
    return json.dumps(original, ensure_ascii=True).encode()


@dataclass(frozen=True, slots=True)
class Intake:
    """Decoding, checking and storing push bodies, for every way in alike."""

    settings: Settings
    ingestor: Ingestor

    def decode(self, body: bytes, content_type: str | None) -> Decoded | BodyError:
        if is_json(content_type, body):
            return decode_json(body, self.settings.max_batch_events)
        if media_type(content_type) == "multipart/form-data":
            return _decode_multipart(body, content_type or "")
        return decode_form(body)

    def check(self, team: str | None, item: Item) -> Accepted | Rejection:
        if isinstance(item, Rejection):
            return item
        parsed = parse_event(item, url_team=team, pbx_timezone=self.settings.pbx_zone)
        if isinstance(parsed, Rejection):
            return parsed
        return Accepted(event=parsed, fields=item, fingerprint=fingerprint(parsed.team, item))

    def store_each(self, accepted: Sequence[Accepted]) -> list[Outcome | Rejection]:
        """Store these events, together when they can be; one result per event, in
        order. Raises `OUTAGE` errors, and any other error of a single event."""
        if not accepted:
            return []
        try:
            return list(self.ingestor.ingest_many(accepted))
        except OUTAGE:
            metrics.DATABASE_ERRORS.inc()
            raise
        except DataError:
            metrics.DATABASE_ERRORS.inc()
            if len(accepted) == 1:
                return [VALUE_REFUSED]
            return self._one_by_one(accepted)
        except Exception as error:
            metrics.DATABASE_ERRORS.inc()
            if len(accepted) == 1:
                raise
            log.warning(
                "a batch of %d failed (%s); storing its events one by one", len(accepted), error
            )
            return self._one_by_one(accepted)

    def _one_by_one(self, accepted: Sequence[Accepted]) -> list[Outcome | Rejection]:
        return [result for one in accepted for result in self.store_each([one])]

    def refuse(self, letter: DeadLetter) -> int:
        """Keep a refused body for an operator; returns its id."""
        return self.ingestor.dead_letter(letter)

    def retry(self, letter: KeptLetter) -> Retried:
        """Store what the kept body now yields; mark the letter resolved if all of it was."""
        if letter.truncated:
            raise RetryRefused("only the start of this body was kept; it cannot be retried")
        if letter.resolved_at is not None:
            raise RetryRefused(f"already resolved: {letter.resolution}")
        decoded = self.decode(letter.body, letter.content_type)
        if isinstance(decoded, BodyError):
            return Retried(letter.id, "rejected", 0, 0, {"body": decoded.message})
        checked = [self.check(letter.team, item) for item in decoded.items]
        accepted = [one for one in checked if isinstance(one, Accepted)]
        stored = iter(self.store_each(accepted))
        counts = dict.fromkeys(Outcome, 0)
        errors: dict[str, Any] = {}
        for index, one in enumerate(checked):
            outcome = next(stored) if isinstance(one, Accepted) else one
            if isinstance(outcome, Rejection):
                errors[str(index)] = outcome.as_dict()
            else:
                counts[outcome] += 1
        stored_count, duplicate = counts[Outcome.STORED], counts[Outcome.DUPLICATE]
        if not errors:
            resolution = f"retried: {stored_count} stored, {duplicate} duplicate"
            self.ingestor.resolve_dead_letter(letter.id, resolution)
        status = "rejected" if errors else "resolved"
        return Retried(letter.id, status, stored_count, duplicate, errors)


class _TooManyFields(Exception):
    pass


def _decode_multipart(body: bytes, content_type: str) -> Decoded | BodyError:
    pairs: list[tuple[bytes, bytes]] = []
    files: list[str] = []

    def on_field(field: Field) -> None:
        if len(pairs) == MAX_FORM_FIELDS:
            raise _TooManyFields
        pairs.append((field.field_name or b"", field.value or b""))

    def on_file(upload: File) -> None:
        files.append((upload.field_name or b"").decode("utf-8", errors="replace"))
        upload.close()

    headers = {"Content-Type": content_type.encode("latin-1", errors="replace")}
    try:
        parse_form(headers, io.BytesIO(body), on_field, on_file)
    except _TooManyFields:
        return BodyError(f"more than {MAX_FORM_FIELDS} fields", 413)
    except (FormParserError, ValueError) as error:
        return BodyError(f"multipart body cannot be read: {error}")
    if files:
        refusal = Rejection(tuple(FieldError(n, "must be a text field, not a file") for n in files))
        return Decoded([refusal])
    return Decoded([text_fields(pairs)])
