"""Run the suite: `python -m benchmarks --help`."""

import sys

from benchmarks.suite import main

sys.exit(main())
