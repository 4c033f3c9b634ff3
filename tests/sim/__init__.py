"""Tests of cdrlog.sim."""
