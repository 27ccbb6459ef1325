"""``python -m monitor.cli``: the same as the ``driftwarden`` command."""

import sys

from monitor.cli.entry import main

sys.exit(main())
