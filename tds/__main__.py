"""``python -m tds``: the ``tds`` command (how the supervisor starts its children)."""

import sys

from tds.main import main

sys.exit(main())
