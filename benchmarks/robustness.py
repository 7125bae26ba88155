"""The robustness grid: `python -m noisy_mask.robustness` (see noisy_mask.experiments.robustness)."""
import sys

from noisy_mask.experiments.robustness import main

if __name__ == "__main__":
    sys.exit(main())
