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

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy database URL")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535)
    pbx_timezone: str = Field("UTC", description="IANA zone of naive eventTime values")
    display_timezone: str = Field("UTC", description="IANA zone the API shows times in")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="largest push body accepted")
    max_request_bytes: int = Field(
        64 * 1024, ge=1024, description="largest body of any other request (sign-in, API)"
    )
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="names this service is reached by, beyond addresses and localhost "
        "(without tokens, requests naming another Host are refused: DNS rebinding)",
    )
    max_call_minutes: int = Field(
        240, ge=1, le=7 * 24 * 60, description="a call with no hangup after this is a timeout"
    )
    timeout_check_seconds: float = Field(60.0, gt=0, description="how often to look for them")
    spool_dir: Path = Field(
        Path("cdrlog-spool"), description="where events wait while the database is away"
    )
    max_batch_events: int = Field(1000, ge=1, description="most events in one JSON batch")
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="a client slower than this to send its body gets 408"
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="a connection without a whole request head after this is closed"
    )
    keep_alive_seconds: int = Field(
        5, ge=1, description="an idle connection is closed after this (uvicorn's keep-alive)"
    )
    max_connections_per_address: int = Field(
        64, ge=1, description="connections one client address may hold open (per process)"
    )
    rate_per_second: float = Field(
        2000.0, gt=0, description="requests per second per client address and per token"
    )
    rate_burst: float = Field(4000.0, ge=1, description="requests allowed in a burst")
    allow_open: bool = Field(
        False, description="serve without tokens beyond loopback (trusted networks only)"
    )
    token_cache_seconds: float = Field(
        2.0, ge=0, description="how long a token check is remembered (revocation delay)"
    )
    # One writer per process gathers the biggest batches: measured with 1, 2 and 4 on
    # MariaDB and PostgreSQL, 1 stored the most (more processes add parallel writers).
    writers: int = Field(1, ge=1, le=64, description="threads committing events (server DBs)")
    max_batch: int = Field(256, ge=1, le=10000, description="most events in one commit")

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
