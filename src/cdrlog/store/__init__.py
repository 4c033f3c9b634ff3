"""The store: SQLAlchemy Core tables, engines and dialect differences, and every
statement cdrlog runs; the only layer that sees a database row."""
