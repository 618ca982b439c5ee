"""Intake's HTTP routers, one module per resource."""
