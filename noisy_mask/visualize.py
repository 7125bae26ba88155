"""`python -m noisy_mask.visualize`: the visualize command (`noisy_mask.commands.visualize`)."""

import sys

from .commands.visualize import main

if __name__ == "__main__":
    sys.exit(main())
