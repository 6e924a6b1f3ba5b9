"""`python -m matrec` runs the CLI."""

import sys

from matrec.cli import main

if __name__ == "__main__":
    sys.exit(main())
