"""Floor 3, router: decides where each collected message goes (rules, then the model, else the manual queue).

The route stage (`stage.py`) asks a `Decider` (`decision.py`): the rules (`by_rules.py`), the ML
suggester (`suggester/`, `learning.py`), the organisation's fallback (`default.py`); held messages
wait in the manual queue (`queue.py`); `replay.py` runs candidate rules over stored mail.
"""
