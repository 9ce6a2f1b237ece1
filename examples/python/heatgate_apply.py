"""Kept for the code that imports it by this name: heatgate.apply of the package in clients/python (pip install
./clients/python, or run from the repository, which finds the package's source)."""
import os
import sys

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python", "src")
if os.path.isdir(_SRC):  # in the repository: its own source, before any installed copy
    sys.path.insert(0, _SRC)

from heatgate.apply import *  # noqa: E402,F401,F403
from heatgate.apply import main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
