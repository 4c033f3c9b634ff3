"""Realistic asterCC traffic: generated, sent to a receiver, checked, bulk-loaded."""
