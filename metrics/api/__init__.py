"""Metrics' HTTP routers."""
