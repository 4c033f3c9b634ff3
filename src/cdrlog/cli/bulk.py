"""`cdrlog bulk-load`: fill a database with many realistic calls, for benchmarks and demos."""

from __future__ import annotations

import sys

import click

from cdrlog.cli.options import setting_option, settings_of


@click.command("bulk-load")
@setting_option("database_url")
@click.option(
    "--cdrs", type=click.IntRange(min=0), default=100_000, show_default=True, help="Calls to load."
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=90,
    show_default=True,
    help="Spread the calls over this many days up to now.",
)
@click.option("--teams", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--agents", type=click.IntRange(min=1), default=20, show_default=True, help="Agents per team."
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Same seed, same calls; the database must not hold this seed's calls yet.",
)
def bulk_load(database_url: str, cdrs: int, days: int, teams: int, agents: int, seed: int) -> None:
    """Migrate the database, then load CDRS calls with their journaled events, their
    call sessions and the teams' agents (a progress bar shows on a terminal)."""
    from sqlalchemy.exc import IntegrityError

    from cdrlog.cli.databases import upgraded_engine
    from cdrlog.sim.bulk import load
    from cdrlog.store.urls import shown

    settings = settings_of(database_url=database_url)
    engine = upgraded_engine(settings.database_url)
    try:
        summary = load(
            engine,
            cdrs,
            seed=seed,
            days=days,
            teams=teams,
            agents=agents,
            progress=sys.stdout.isatty(),
        )
    except IntegrityError as error:
        # The same seed makes the same session ids, whatever the days.
        raise click.ClickException(
            f"the database already holds calls of seed {seed} (the batches before were "
            "kept): load with another --seed, or into an empty database"
        ) from error
    finally:
        engine.dispose()
    click.echo(
        f"cdrlog: loaded {summary.cdrs:,} CDRs, {summary.events:,} events, "
        f"{summary.sessions:,} sessions and {summary.agents:,} agents into "
        f"{shown(settings.database_url)}\n"
        f"  calls from {summary.start:%Y-%m-%d %H:%M} to {summary.end:%Y-%m-%d %H:%M} UTC\n"
        f"  {summary.rows:,} rows in {summary.seconds:.1f} s: "
        f"{summary.rows_per_second:,.0f} rows/s ({summary.cdrs_per_second:,.0f} CDRs/s); "
        f"statistics refreshed in {summary.analyze_seconds:.1f} s"
    )
