"""`python -m noisy_mask.validate`: the validate command (`noisy_mask.commands.validate`)."""

import sys

from .commands.validate import main

if __name__ == "__main__":
    sys.exit(main())
