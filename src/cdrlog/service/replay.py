"""Replaying events from files: JSON lines, form-encoded lines, or a dead-letter export.

Each line stands for one push body. `body_of` (pure) says which: a JSON object or array
is sent as `application/json`, anything else as a form body (one asterCC POST), and a
line of `cdrlog rejected export` as the dead letter's own body, content type and team.
`Replayer` then runs every body through the intake pipeline (`cdrlog.service.intake`),
so a replay accepts exactly what the push URL would, `batch` events a transaction.
Lines are streamed: memory stays flat for any file. Storing is idempotent (an exact
re-send is a duplicate), so a replay that stopped half way is simply run again.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.bodies import BYTE_ORDER_MARK, BodyError, Decoded
from cdrlog.core.events import FieldError, Rejection
from cdrlog.service.intake import JSON_TYPE, Body, Intake, item_bytes, kept_of
from cdrlog.store.deadletters import DeadLetter

FORM_TYPE = "application/x-www-form-urlencoded"
# The keys every line of `cdrlog rejected export` has; no push event carries all four.
DEAD_LETTER_KEYS = frozenset({"body", "path", "reason", "truncated"})
DEFAULT_BATCH = 2000
# A line may be this many times the push URL's body limit: a dead-letter line carries
# its body twice (as text and as base64), escaped. The body itself must be in the limit.
LINE_ALLOWANCE = 8
SHOWN_REFUSALS = 10

Source = tuple[str, IO[bytes]]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the body or event at `where` (FILE:LINE, or FILE:LINE[INDEX] for an item of
    a JSON array) was not stored."""

    where: str
    reason: Mapping[str, Any]

    def __str__(self) -> str:
        return f"{self.where}: " + "; ".join(f"{k}: {v}" for k, v in self.reason.items())


@dataclass(slots=True)
class ReplaySummary:
    """What a replay read and did. `accepted` events are `stored` or `duplicate`;
    `refusals` holds the first few refused bodies or events, `rejected` counts them all."""

    lines: int = 0
    skipped: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.stored + self.duplicate

    @property
    def events_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def body_of(line: bytes, team: str | None) -> Body | Rejection | None:
    """The push body a line stands for; None for a blank line or a `#` comment.

    `team` plays the push URL's team (None: each event's `orgidentity`). A dead-letter
    line brings its own team; it is refused when that disagrees with `team`.
    """
    text = line.removeprefix(BYTE_ORDER_MARK).strip()
    if not text or text.startswith(b"#"):
        return None
    if text[:1] == b"{" and b'"reason"' in text and b'"truncated"' in text:
        letter = _dead_letter(text)
        if letter is not None:
            return _letter_body(letter, team)
    if text[:1] in (b"{", b"["):
        return Body(text, JSON_TYPE, team)
    return Body(text, FORM_TYPE, team)


def _dead_letter(text: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and document.keys() >= DEAD_LETTER_KEYS:
        return document
    return None


def _letter_body(letter: Mapping[str, Any], team: str | None) -> Body | Rejection:
    """The dead letter's body, content type and team (its own, else `team`)."""
    names = ("orgidentity", "body", "body_base64", "content_type")
    own, text, encoded, kind = (letter.get(name) for name in names)
    if not isinstance(text, str) or not all(
        isinstance(v, str | None) for v in (own, encoded, kind)
    ):
        return _refused("body", "must be text; orgidentity, body_base64, content_type text or null")
    if own is not None and team is not None and own != team:
        return _refused("orgidentity", f"the dead letter is of team {own!r}, not {team!r}")
    if letter["truncated"]:
        return _refused("body", "only the start of this body was kept; it cannot be replayed")
    data = text.encode("utf-8")
    if encoded is not None:
        try:
            exact = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return _refused("body_base64", "is not valid base64")
        # The exact bytes as sent, unless `body` was edited by hand after the export.
        if exact.decode("utf-8", errors="replace") == text:
            data = exact
    return Body(data, kind, own if own is not None else team)


def _refused(name: str, message: str) -> Rejection:
    return Rejection((FieldError(name, message),))


@dataclass(slots=True)
class _Pending:
    accepted: Accepted
    where: str


class Replayer:
    """Replays sources through `intake`, `batch` accepted events per transaction.

    A body larger than the push URL's limit is refused, as the push URL refuses it. With
    `keep_refused`, every refused body or event is also kept as a dead letter (path
    `replay:FILE:LINE`), as the push URL would keep it; a line that is not a push body
    (a broken dead-letter line, or one too long to read) is only reported.
    """

    def __init__(
        self,
        intake: Intake,
        *,
        team: str | None = None,
        batch: int = DEFAULT_BATCH,
        keep_refused: bool = False,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.intake = intake
        self.team = team
        self.batch = batch
        self.keep_refused = keep_refused
        self._line_cap = LINE_ALLOWANCE * intake.settings.max_body_bytes
        self._pending: list[_Pending] = []

    def replay(
        self, sources: Iterable[Source], progress: Callable[[int], None] | None = None
    ) -> ReplaySummary:
        """Replay every line of every source in order; `progress` is told how many more
        bytes were read after each batch is stored. Database errors other than a refused
        value propagate (what was committed stays; running the replay again is safe)."""
        summary = ReplaySummary()
        began = time.perf_counter()
        unreported = 0
        for name, stream in sources:
            for number, line in enumerate(_lines(stream, self._line_cap), start=1):
                unreported += line if isinstance(line, int) else len(line)
                self._line(summary, f"{name}:{number}", line)
                if len(self._pending) >= self.batch:
                    self._flush(summary)
                    if progress is not None:
                        progress(unreported)
                        unreported = 0
        self._flush(summary)
        if progress is not None:
            progress(unreported)
        summary.seconds = time.perf_counter() - began
        return summary

    def _line(self, summary: ReplaySummary, where: str, line: bytes | int) -> None:
        summary.lines += 1
        body: Body | Rejection | None
        if isinstance(line, int):
            body = _refused("line", f"is longer than {self._line_cap} bytes")
        else:
            body = body_of(line, self.team)
        limit = self.intake.settings.max_body_bytes
        if body is None:
            summary.skipped += 1
        elif isinstance(body, Rejection):
            self._refuse(summary, where, body.as_dict(), None)
        elif len(body.data) > limit:
            # Kept as the push URL keeps an oversized body: at most its start.
            data, cut = kept_of(body.data)
            kept = Body(data, body.content_type, body.team)
            self._refuse(summary, where, {"body": f"is larger than {limit} bytes"}, kept, cut)
        else:
            self._body(summary, where, body)

    def _body(self, summary: ReplaySummary, where: str, body: Body) -> None:
        decoded = self.intake.decode(body.data, body.content_type)
        if isinstance(decoded, BodyError):
            self._refuse(summary, where, {"body": decoded.message}, body)
            return
        for index, item in enumerate(decoded.items):
            at = f"{where}[{index}]" if decoded.batch else where
            checked = self.intake.check(body.team, item)
            if isinstance(checked, Rejection):
                self._refuse(summary, at, checked.as_dict(), _item_body(body, decoded, index))
            else:
                self._pending.append(_Pending(checked, at))

    def _flush(self, summary: ReplaySummary) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self._store(summary, pending)

    def _store(self, summary: ReplaySummary, pending: list[_Pending]) -> None:
        outcomes = self.intake.store_each([p.accepted for p in pending])
        for one, outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, Rejection):
                self._refuse(summary, one.where, outcome.as_dict(), _event_body(one.accepted))
        counted = Counter(outcomes)
        summary.stored += counted[Outcome.STORED]
        summary.duplicate += counted[Outcome.DUPLICATE]

    def _refuse(
        self,
        summary: ReplaySummary,
        where: str,
        reason: Mapping[str, Any],
        body: Body | None,
        truncated: bool = False,
    ) -> None:
        summary.rejected += 1
        if len(summary.refusals) < SHOWN_REFUSALS:
            summary.refusals.append(Refusal(where, reason))
        if self.keep_refused and body is not None:
            letter = DeadLetter(
                path=f"replay:{where}",
                team=body.team,
                content_type=body.content_type,
                remote_addr=None,
                body=body.data,
                truncated=truncated,
                reason=reason,
            )
            self.intake.refuse(letter)
            summary.dead_letters += 1


def _lines(stream: IO[bytes], cap: int) -> Iterator[bytes | int]:
    """The stream's lines; for a line longer than `cap` bytes, only its length (read a
    piece at a time), so memory stays bounded whatever the file holds."""
    while line := stream.readline(cap + 1):
        if len(line) <= cap or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while not line.endswith(b"\n") and (line := stream.readline(cap)):
            size += len(line)
        yield size


def _item_body(body: Body, decoded: Decoded, index: int) -> Body:
    """What to keep of a refused event: one item of a batch alone, as the push URL does."""
    if not decoded.batch:
        return body
    return Body(item_bytes(decoded.originals[index]), JSON_TYPE, body.team)


def _event_body(accepted: Accepted) -> Body:
    return Body(item_bytes(dict(accepted.fields)), JSON_TYPE, accepted.event.team)
