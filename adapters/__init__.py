"""The outside world: settings, logging, records, archive, mail and templates.

Each module holds one adapter with an embedded default that runs on one
machine (SQLite, a folder archive, an outbox folder); production swaps in
PostgreSQL, S3 and SendGrid behind the same interfaces.
"""
