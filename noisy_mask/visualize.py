"""`python -m noisy_mask.visualize`: see `noisy_mask.viz.pictures`."""
import sys

from .viz.pictures import main

if __name__ == "__main__":
    sys.exit(main())
