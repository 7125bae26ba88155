#!/usr/bin/env python
"""`noisy-mask train_net` in a checkout: `python train_net.py --config-file ... [--num-gpus N]`."""
import sys

from noisy_mask.commands.train_net import main

if __name__ == "__main__":
    sys.exit(main())
