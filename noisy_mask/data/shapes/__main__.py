import sys
from ...commands.make_shapes import main

sys.exit(main())
