"""`python -m noisy_mask.noise`: see `noisy_mask.noise.cli`."""

import sys

from .cli import main

sys.exit(main())
