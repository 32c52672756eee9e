"""``python -m behaviorlm``: the ``behaviorlm`` command."""

import sys

from behaviorlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
