"""The package's fixtures: see hg_fixtures.py. It also exports what tests/python's and examples/python's
conftest modules export (Daemon, Client, BIN, free_port): in one pytest session all three share the module
name `conftest`, and their tests import from it."""
from hg_fixtures import BIN, Client, Daemon, daemon, free_port, make_daemon, redis_server  # noqa: F401
