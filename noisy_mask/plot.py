"""`python -m noisy_mask.plot`: see `noisy_mask.viz.plot`."""
import sys

from .viz.plot import main

if __name__ == "__main__":
    sys.exit(main())
