"""Fixtures for the whole suite. The real servers come from tests/servers.py."""

pytest_plugins = ["tests.servers"]
