"""The import's reader (tests only), slow to exit after its last message, as an interpreter
shutting down on a busy machine is: the import must let it go, not kill it."""

from __future__ import annotations

import sys
import time

from contacts_api.contacts import import_reader

status = import_reader.main()
time.sleep(0.5)
sys.exit(status)
