"""Use cases, without HTTP or a command line: the intake pipeline, ingest, group
commit, spool, rebuild, replay, and the composition root (`services`)."""
