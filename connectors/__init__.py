"""Floor 2, connectors: how postbud talks to each mailbox provider.

The contract every connector keeps is `base.py` (`Connector`, `Replier`, the error tree); the
registry (`registry.py`) lists the built-ins and the `postbud.connectors` plug-ins. One package per
provider (`ngdp/`, `eboks/`, `mitdk/`; the drop folder is `folder.py`); MeMo and e-mail parsing in
`memo/` and `email.py`. The fakes these connectors are tested against live in `sandbox/providers/`.
"""
