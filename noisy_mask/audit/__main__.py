"""`python -m noisy_mask.audit`: the audit command (`noisy_mask.commands.audit`)."""

import sys

from ..commands.audit import main

sys.exit(main())
