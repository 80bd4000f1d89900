"""liege: a uWSGI-compatible Python application server (https://github.com/ - see README.md).

The server itself is the extension module ``liege._liege`` (Rust, built with maturin); this package only
gives it a command line: ``liege ...`` (the console script) and ``python -m liege ...`` run the same
``_liege.main(argv)`` on the interpreter of this environment, which also runs the apps it serves.
"""

import sys

from liege._liege import PYTHON_VERSION, __version__
from liege._liege import main as _main

__all__ = ["main", "__version__", "PYTHON_VERSION"]


def main(argv=None):
    """Run liege with ``argv`` (default ``sys.argv[1:]``) and return its exit status."""
    if argv is None:
        argv = sys.argv[1:]
    return _main(list(argv))
