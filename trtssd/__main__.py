"""`python -m trtssd ...`: the same as the `trtssd` command (see trtssd.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
