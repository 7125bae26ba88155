"""`python -m noisy_mask.robustness`: the robustness command (`noisy_mask.commands.robustness`)."""

import sys

from .commands.robustness import main

if __name__ == "__main__":
    sys.exit(main())
