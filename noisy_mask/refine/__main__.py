"""`python -m noisy_mask.refine`: see `noisy_mask.refine.cli`."""

import sys

from .cli import main

sys.exit(main())
