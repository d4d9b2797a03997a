"""Temporal activities: every side effect of a dossier workflow."""
