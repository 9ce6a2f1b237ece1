"""The daemon fixtures of tests/python (Daemon, Client, daemon, make_daemon), loaded under their own name so
both directories can run in one pytest session."""
import importlib.util
import os

_path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "python", "conftest.py")
_spec = importlib.util.spec_from_file_location("heatgate_daemon_fixtures", _path)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)

Daemon, Client, daemon, make_daemon = fixtures.Daemon, fixtures.Client, fixtures.daemon, fixtures.make_daemon
BIN, free_port = fixtures.BIN, fixtures.free_port
