"""Tests of cdrlog.web."""
