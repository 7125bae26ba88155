"""`python -m noisy_mask.plot`: the plot command (`noisy_mask.commands.plot`)."""

import sys

from .commands.plot import main

if __name__ == "__main__":
    sys.exit(main())
