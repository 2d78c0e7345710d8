"""`python -m iquest_core.train ...` (what torchrun runs): the same as `iquest train ...`."""

import sys

from iquest_core.train.cli import main

sys.exit(main())
