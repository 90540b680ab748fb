"""Floor 4, the application: collects, routes, delivers and traces a company's digital mail.

It wires the stages together: the daemon (`daemon.py`, `service.py`, `runtime.py`), the CLI (one
module per command group in `cli/`), the HTTP API and confirm page, start-up extensions such as the
sandbox (`extensions.py`), and the back office: trace, stats, retention, erasure, reply, status.
"""

__version__ = "0.1.0"
