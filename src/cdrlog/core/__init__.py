"""The pure core: events, rules, the CDR and its fold, agent states, times, reports.

Imports the standard library and itself only, reads no clock and draws no randomness
(the import-linter contracts in pyproject.toml hold it to that)."""
