"""`python -m noisy_mask.robustness`: see `noisy_mask.experiments.robustness`."""
import sys

from .experiments.robustness import main

if __name__ == "__main__":
    sys.exit(main())
