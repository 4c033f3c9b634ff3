"""The composition root: every service a running cdrlog holds, built once from its
`Settings`, for the web app and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from cdrlog.service.batcher import Batcher
from cdrlog.service.callcache import CallCache
from cdrlog.service.clock import Clock, utc_now
from cdrlog.service.hookwatch import HookWatch
from cdrlog.service.ingest import Ingestor
from cdrlog.service.intake import Intake
from cdrlog.service.pushwatch import PushWatch
from cdrlog.service.retention import Retention
from cdrlog.service.settings import Settings
from cdrlog.service.spool import Spool
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, one_writer_at_a_time
from cdrlog.store.reader import Reader


@dataclass(slots=True)
class Services:
    """What the app's handlers and the CLI's commands work with. The writer threads
    (`batcher`) run only in a serving process: `start_writers` starts them."""

    settings: Settings
    engine: Engine
    clock: Clock
    ingestor: Ingestor
    intake: Intake
    reader: Reader
    tokens: TokenStore
    pushes: PushWatch
    spool: Spool
    hooks: HookWatch
    batcher: Batcher | None = field(default=None)
    retention: Retention | None = field(default=None)

    def start_writers(self) -> Batcher:
        """Start the group-commit writers, which spool while the database is away, and
        the thread that writes the tallies of pushes without a token."""
        self.pushes.start()
        writers = 1 if one_writer_at_a_time(self.engine) else self.settings.writers
        self.batcher = Batcher(
            self.intake, writers=writers, max_batch=self.settings.max_batch, spool=self.spool
        )
        # Retention runs where events are received: a serving process, not a command.
        days = self.settings.retain_days
        if days is not None and self.retention is None:
            self.retention = Retention(self.engine, self.clock, days)
        return self.batcher

    def close(self) -> None:
        """Store what is queued, then let go of the spool and the database."""
        if self.retention is not None:
            self.retention.close()
        if self.batcher is not None:
            self.batcher.close()
        self.pushes.close()
        self.spool.close()
        self.engine.dispose()


def build_services(
    settings: Settings, engine: Engine | None = None, clock: Clock = utc_now
) -> Services:
    """The services for `settings`; the engine is made from them unless one is given."""
    engine = engine if engine is not None else make_engine(settings.database_url)
    watch = HookWatch(engine)
    ingestor = Ingestor(
        engine,
        clock,
        timedelta(minutes=settings.max_call_minutes),
        cache=CallCache(settings.call_cache),
        hooks=watch,
    )
    return Services(
        settings=settings,
        engine=engine,
        clock=clock,
        ingestor=ingestor,
        intake=Intake(settings, ingestor),
        reader=Reader(engine),
        tokens=TokenStore(engine, clock, settings.token_cache_seconds),
        pushes=PushWatch(engine, clock),
        spool=Spool(settings.spool_dir),
        hooks=watch,
    )
