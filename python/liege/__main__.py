"""``python -m liege [uWSGI options]``: the same as the ``liege`` command, on this interpreter."""

import sys

from liege import main

if __name__ == "__main__":
    sys.exit(main())
