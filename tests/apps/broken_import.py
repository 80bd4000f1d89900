"""Fails at import time (a mounted app that does not load must fail the vassal with its traceback)."""
raise ImportError("broken_import: this app cannot be imported")
