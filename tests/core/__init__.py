"""Tests of cdrlog.core."""
