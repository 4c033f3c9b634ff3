"""Typed settings, read once: from the values given (the command line's), `CDRLOG_*`
environment variables and a TOML configuration file, in that order of precedence."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite:///cdrlog.db"
CONFIG_VARIABLE = "CDRLOG_CONFIG"
# Read when it exists and no other file is named: where a package puts its configuration.
DEFAULT_CONFIG = Path("/etc/cdrlog/cdrlog.toml")
# The file named for the settings built in this context (`reading_config`); None: the
# one CONFIG_VARIABLE names, else DEFAULT_CONFIG. A context variable rather than an
# argument because pydantic builds the sources in a class method that takes none.
_named_config: ContextVar[Path | None] = ContextVar("cdrlog_config", default=None)


class ConfigError(ValueError):
    """A configuration file that is missing, unreadable, not TOML, or names no setting."""


class Settings(BaseSettings):
    """Everything the service can be told. Invalid values stop it at start, not mid-call."""

    model_config = SettingsConfigDict(env_prefix="CDRLOG_", frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: a value given (on the command line) over a CDRLOG_* variable over
        # the configuration file over the default; no .env or secrets directory.
        path = config_file()
        if path is None:
            return init_settings, env_settings
        return init_settings, env_settings, config_source(settings_cls, path)

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
    call_cache: int = Field(
        16_384,
        ge=0,
        le=10_000_000,
        description="Calls whose events and CDR each process keeps in memory to fold new "
        "events onto (0: read every call back from the database).",
    )
    retain_days: int | None = Field(
        None,
        ge=1,
        description="Delete calls (CDRs and their events) and dead letters older than this "
        "many days, once an hour; unset keeps everything.",
    )
    hook_retry_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 30,
        description="How long a hook's delivery is tried again (exponential backoff with "
        "jitter) before it is marked failed; `cdrlog hooks replay` sends it again.",
    )
    hook_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="A hook's delivery that takes longer has failed."
    )
    allow_private_targets: bool = Field(
        False,
        description="Let hooks send to loopback, link-local and private addresses (a "
        "receiver on this machine or this network); refused by default.",
    )
    alert_check_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How often each serving process measures what the alert rules watch "
        "(`cdrlog alerts add`) and raises or clears their alerts.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        # Imported when settings are read, not when `Settings` is: `cdrlog CMD --help`
        # needs the fields, not SQLAlchemy.
        from cdrlog.store.urls import checked_url

        checked_url(value)
        return value

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


def config_file() -> Path | None:
    """The configuration file settings are read from: the one named for this context,
    else CDRLOG_CONFIG's, else DEFAULT_CONFIG if it exists; None for none. ConfigError
    when a file named (either way) does not exist: a typo must not go unnoticed."""
    named = _named_config.get()
    if named is None and os.environ.get(CONFIG_VARIABLE):
        named = Path(os.environ[CONFIG_VARIABLE])
    if named is None:
        return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    if not named.is_file():
        raise ConfigError(f"no configuration file at {named}")
    return named


@contextmanager
def reading_config(path: Path | None) -> Iterator[None]:
    """Settings built inside read the file `path` (None: as outside)."""
    token = _named_config.set(path)
    try:
        yield
    finally:
        _named_config.reset(token)


def config_source(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    """The settings the TOML file at `path` holds, each key a field's name. ConfigError,
    naming the file, for one that cannot be read or parsed, or a key that is no setting
    (pydantic would call it an "extra input" without saying where it came from)."""
    try:
        source = TomlConfigSettingsSource(settings_cls, toml_file=path)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    fields = settings_cls.model_fields
    for key in source.toml_data:
        if key not in fields:
            near = get_close_matches(key.replace("-", "_"), fields, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"{key!r} in {path} is no setting{hint}")
    return source


def config_values(path: Path) -> dict[str, Any]:
    """The settings the file at `path` gives, as read (ConfigError as `config_source`)."""
    return dict(config_source(Settings, path).toml_data)
