"""``python -m attribution_webhooks.testing.simulation``: see ``cli``."""

import sys

from .cli import main

sys.exit(main())
