"""Adding and removing alert rules, as `cdrlog alerts` and the admin API both do."""

from __future__ import annotations

from sqlalchemy import Engine

from cdrlog.core.alerts import NewRule, Rule
from cdrlog.core.hooks import Kind
from cdrlog.service.clock import Clock
from cdrlog.store import alerts, hooks

# Every serving process measures every rule every few seconds: a bound on that work.
MOST_RULES = 500


class RuleRefused(Exception):
    """A rule that cannot be added, and why."""


def add_rule(engine: Engine, clock: Clock, asked: NewRule) -> Rule:
    """Store a checked rule (`core.alerts.checked_rule`); its alert starts down."""
    if alerts.active_count(engine) >= MOST_RULES:
        raise RuleRefused(f"there are {MOST_RULES} rules already: remove one first")
    return alerts.add(engine, asked, clock())


def remove_rule(engine: Engine, clock: Clock, rule_id: int) -> bool:
    """Remove a rule (False: no such rule); a raised alert of it is cleared, and that
    announced to the hooks that take its team's `alert.cleared`."""
    rule = alerts.find(engine, rule_id)
    if rule is None:
        return False
    wanted = any(hook.wants(rule.team, Kind.ALERT_CLEARED) for hook in hooks.active(engine))
    return alerts.remove(engine, rule_id, clock(), announce=wanted)
