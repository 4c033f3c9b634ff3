"""Typed settings, read once from flags and `CDRLOG_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///cdrlog.db"


class Settings(BaseSettings):
    """Everything the service can be told. Invalid values stop it at start, not mid-call."""

    model_config = SettingsConfigDict(env_prefix="CDRLOG_", frozen=True, extra="forbid")

    # Each description is also the help of the setting's `cdrlog` option.
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///FILE, mysql+pymysql://USER@HOST/DB, "
        "postgresql+psycopg://USER@HOST/DB.",
    )
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    pbx_timezone: str = Field(
        "UTC", description="IANA zone of eventTime values written without an offset."
    )
    display_timezone: str = Field(
        "UTC", description="IANA zone the API, exports and dashboard show times in by default."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest push body accepted; larger ones get 413."
    )
    max_request_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest body of any other request (sign-in, API); larger ones get 413.",
    )
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="A name this service is reached by without tokens (repeatable; in the "
        'environment, a JSON array: ["cdr.example.com"]); addresses and localhost always '
        "are. Guards the open mode against DNS rebinding: a request naming another Host "
        "gets 403.",
    )
    max_call_minutes: int = Field(
        240,
        ge=1,
        le=7 * 24 * 60,
        description="A call with no hangup this long after it started is closed as timeout.",
    )
    timeout_check_seconds: float = Field(
        60.0, gt=0, description="How often to look for calls to close as timeout."
    )
    spool_dir: Path = Field(
        Path("cdrlog-spool"),
        description="Where events wait, on disk, while the database is unreachable.",
    )
    max_batch_events: int = Field(
        1000, ge=1, description="Most events in one JSON batch; more get 413."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="A request body not whole this long after its head gets 408."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection with no whole request head this long after it opened, or "
        "after its last answer, is closed.",
    )
    keep_alive_seconds: int = Field(
        5, ge=1, description="A connection idle this long after an answer is closed."
    )
    max_connections_per_address: int = Field(
        64,
        ge=1,
        description="Open connections one client address may hold (per process); more get "
        "429. Behind a proxy every connection is the proxy's: raise it above the proxy's own.",
    )
    rate_per_second: float = Field(
        2000.0,
        gt=0,
        description="Requests per second per client address and per token; more get 429.",
    )
    rate_burst: float = Field(
        4000.0,
        ge=1,
        description="Most requests one client address or token may send at once; beyond "
        "them, the rate per second applies.",
    )
    allow_open: bool = Field(
        False,
        description="Listen beyond loopback even with no token (only on a trusted network).",
    )
    token_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a token check is remembered: a revoked token may work this long.",
    )
    # One writer per process gathers the biggest batches: measured with 1, 2 and 4 on
    # MariaDB and PostgreSQL, 1 stored the most (more processes add parallel writers).
    writers: int = Field(
        1,
        ge=1,
        le=64,
        description="Threads committing events, per process (server databases; SQLite has one).",
    )
    max_batch: int = Field(256, ge=1, le=10000, description="Most events one commit stores.")

    @field_validator("pbx_timezone", "display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_named(value)
        return value

    @property
    def pbx_zone(self) -> ZoneInfo:
        return ZoneInfo(self.pbx_timezone)

    @property
    def display_zone(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as error:
        # OSError: a tzdata directory ("America") or a name too long for a file name.
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Asia/Shanghai)") from error
