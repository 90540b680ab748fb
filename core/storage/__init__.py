"""Storage: the tables, the engine, schema migrations and encryption at rest."""
