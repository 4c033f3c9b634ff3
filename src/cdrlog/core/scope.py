"""Which teams a reader may see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    """`teams` None: every team. Otherwise only these."""

    teams: tuple[str, ...] | None

    def narrow(self, team: str | None) -> tuple[str, ...] | None:
        """The teams a query may touch when the reader asks for `team` (None: all it may)."""
        if team is None:
            return self.teams
        if self.teams is None or team in self.teams:
            return (team,)
        return ()
