"""`python -m plasmavmc.cli ...`: the same as the `plasmavmc` console script."""

import sys

from plasmavmc.cli.main import main

sys.exit(main())
