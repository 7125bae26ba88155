"""`python -m noisy_mask.train_net`: the train_net command (`noisy_mask.commands.train_net`)."""

import sys

from .commands.train_net import main

if __name__ == "__main__":
    sys.exit(main())
