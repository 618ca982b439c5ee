"""Shared runtime of the motcua services: nothing domain-specific lives here."""
