"""Tests of cdrlog.store."""
