"""The ground floor: what every stage stands on; it imports no stage.

Domain types (`domain.py`), settings primitives (`settings.py`: SecretRef, Cvr, config-relative
paths), the config models (`config.py`) and reading the file (`configfile.py`), the recipient
directory protocols (`recipients.py`), storage with migrations and encryption at rest (`storage/`),
codec, lifecycle (status changes with their trace events), metrics, logs, notify, tomlpos.
"""
