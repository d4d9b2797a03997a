"""Ways in: intake of invoices, the `dossier` command, the dev stack."""
