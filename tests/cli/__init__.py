"""Tests of cdrlog.cli."""
