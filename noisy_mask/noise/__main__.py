"""`python -m noisy_mask.noise`: the noise command (`noisy_mask.commands.noise`)."""

import sys

from ..commands.noise import main

sys.exit(main())
