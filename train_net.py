#!/usr/bin/env python
"""Train and evaluate Mask R-CNN with noisy_mask's head: `python -m noisy_mask.train_net`."""
from noisy_mask.train_net import cli

if __name__ == "__main__":
    cli()
