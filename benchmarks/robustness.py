"""The robustness grid, `python -m noisy_mask.robustness` (same flags)."""
import sys

from noisy_mask.robustness import main

if __name__ == "__main__":
    sys.exit(main())
