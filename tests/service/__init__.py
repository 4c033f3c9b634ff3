"""Tests of cdrlog.service."""
