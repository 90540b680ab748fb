"""Delivery: hands routed messages to approved recipients, always encrypted."""
