"""The benchmark: measured speed of the dossier service on this machine.

`python -m bench` (or `make bench`) starts Temporal's dev server, the real
worker in its own process (SQLite, local archive and outbox in a temporary
folder) and drives dossiers through the real intake and workflow. It prints
a table with the targets beside the figures and writes the same as JSON to
`bench/results/latest.json`.
"""
