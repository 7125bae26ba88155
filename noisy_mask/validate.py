"""`python -m noisy_mask.validate`: see `noisy_mask.coco.checks`."""
import sys

from .coco.checks import main

if __name__ == "__main__":
    sys.exit(main())
