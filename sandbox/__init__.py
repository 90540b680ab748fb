"""The sandbox: generated Danish business mail, and the plumbing every fake provider runs on."""
