"""Tests against real `cdrlog serve` processes, over loopback."""
