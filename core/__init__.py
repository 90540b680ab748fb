"""The ground floor: domain types, settings, storage, codec, lifecycle, metrics and logs that every stage shares; it imports no stage."""
