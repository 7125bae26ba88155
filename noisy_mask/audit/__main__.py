"""`python -m noisy_mask.audit`: see `noisy_mask.audit.cli`."""

import sys

from .cli import main

sys.exit(main())
