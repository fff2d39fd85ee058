"""``estate``, the one command-line tool for people (``estate --help``)."""

from services.cli.commands import app

__all__ = ["app"]
