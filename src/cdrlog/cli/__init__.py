"""The `cdrlog` command (click only): one module per command group."""
