"""`python -m trtssd ...`: the same as the `trtssd` command (see trtssd.commands.cli)."""
import sys

from .commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
