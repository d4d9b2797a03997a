"""The web app: invoice upload API, dossier status, staff pages."""
