"""Rules: the administrators' TOML routing language."""
