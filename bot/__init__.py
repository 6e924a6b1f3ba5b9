"""Slack adapter for matrec."""
