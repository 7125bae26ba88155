"""`python -m noisy_mask.refine`: the refine command (`noisy_mask.commands.refine`)."""

import sys

from ..commands.refine import main

sys.exit(main())
