"""`python -m noisy_mask COMMAND ...`: the `noisy-mask` console script (`noisy_mask.commands`)."""

import sys

from .commands import main

sys.exit(main())
