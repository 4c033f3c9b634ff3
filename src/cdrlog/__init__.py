"""cdrlog: asterCC push events in, one correct CDR per call out."""

__version__ = "0.1.0"
