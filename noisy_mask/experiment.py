"""`python -m noisy_mask.experiment`: see `noisy_mask.experiments.runner`."""
import sys

from .experiments.runner import main

if __name__ == "__main__":
    sys.exit(main())
