"""DVC stage entry points: ``python -m pipeline.stages.<stage> <name>``.

Importing this package makes SIGINT and SIGTERM stop the stage (:mod:`pipeline.runtime.interrupts`), even
when its parent started it with them ignored: from the first moment, not only once the stage runs.
"""

from pipeline.runtime.interrupts import install_stop_handlers

install_stop_handlers()
