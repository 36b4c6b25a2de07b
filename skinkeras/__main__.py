"""`python -m skinkeras` is the same as the `skinkeras` command."""

import sys

from skinkeras.cli import main

sys.exit(main())
