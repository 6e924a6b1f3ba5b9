"""Evaluation: run labelled cases through the engine's modes and strategies, and measure the answers.

`dataset` reads and writes the JSONL case format (datasets/README.md documents it); the metrics,
the runner and the report are modules beside it. Nothing here runs at import time.
"""
