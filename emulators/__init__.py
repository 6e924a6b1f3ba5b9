"""Loopback emulators of Claude and Slack, for tests and benchmarks."""
