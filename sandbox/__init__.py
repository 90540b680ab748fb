"""Beside the house, the sandbox: fakes and test fixtures that no product module imports.

Fake providers (`providers/`, one per connector, served for each registered connector that has
one), generated Danish business mail, fault injection, the test CA, the TLS mail server, the demo
start-up behind `make run` and `postbud sandbox` (registered as the `sandbox` entry point of
`postbud.extensions`), and the connector conformance suite. Tests, benchmarks and the demo use it.
"""
