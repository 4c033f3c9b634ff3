"""Database URLs: whether one names a database cdrlog can open, and how one is shown."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

KINDS = (
    "sqlite:///FILE, mysql+pymysql://USER:PASSWORD@HOST/DB or "
    "postgresql+psycopg://USER:PASSWORD@HOST/DB"
)


def checked_url(text: str) -> URL:
    """`text` as a URL whose dialect and driver are installed; ValueError saying what is
    wrong and how to write it otherwise. The text is repeated only where it cannot
    hold a password (it did not parse, or only its scheme is named)."""
    try:
        url = make_url(text)
    except ArgumentError:
        if "://" not in text:
            # A file name is the likeliest mistake: say how to write it as a URL.
            raise ValueError(f"{text!r} is not a URL; a SQLite file is sqlite:///{text}") from None
        raise ValueError(f"not a database URL; write {KINDS}") from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database {url.drivername!r}; write {KINDS}") from None
    try:
        dialect.import_dbapi()
    except ImportError:
        raise ValueError(
            f"the driver of {url.drivername!r} is not installed; write {KINDS}"
        ) from None
    return url


def shown(text: str) -> str:
    """The URL `text` with its password hidden, fit for a message or a listing."""
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return text
