"""postbud: collects, routes, delivers and traces a company's digital mail."""

__version__ = "0.1.0"
