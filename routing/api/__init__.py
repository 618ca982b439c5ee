"""Routing's HTTP API."""
