"""No token in any log line: a logging filter that every handler of the service gets."""

from __future__ import annotations

import re
from logging import Filter, LogRecord
from urllib.parse import unquote_plus

from cdrlog.core.tokens import PREFIX

TOKEN_IN_QUERY = re.compile(r"(?i)([?&](?:t|%74)(?:o|%6f)(?:k|%6b)(?:e|%65)(?:n|%6e)=)[^&\s]*")
TOKEN_TEXT = re.compile(r"(?i)cdrlog_[0-9a-f]{8,}")


class RedactTokens(Filter):
    """No token in any log line: `?token=` values whatever the name's encoding, and
    anything that reads as a token once percent-decoded, wherever it stands."""

    def filter(self, record: LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redacted(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redacted(a) if isinstance(a, str) else a for a in record.args)
        return True


def redacted(text: str) -> str:
    text = TOKEN_TEXT.sub(PREFIX + "REDACTED", TOKEN_IN_QUERY.sub(r"\1REDACTED", text))
    if not TOKEN_TEXT.search(_decoded(text)):
        return text
    # Hidden by percent-encoding: the query string goes whole, and if the token was
    # not in it, the line keeps only that it held one.
    path, mark, _ = text.partition("?")
    text = path + mark + ("REDACTED" if mark else "")
    return "[a line holding a token, withheld]" if TOKEN_TEXT.search(_decoded(text)) else text


def _decoded(text: str) -> str:
    """`text` percent-decoded until it stops changing (a few rounds at most)."""
    for _ in range(4):
        plain = unquote_plus(text)
        if plain == text:
            break
        text = plain
    return text
