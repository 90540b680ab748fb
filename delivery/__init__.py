"""Floor 2, delivery: hands routed messages to approved recipients, always encrypted (paper excepted).

A channel (e-mail over SMTP with TLS, a signed webhook, physical post) is `channels.py` with `smtp.py`,
`webhook.py` and `post.py`/`post_api.py`; encryption `smime.py`/`pgp.py`; the recipients file `recipients.py`; approval
`approval.py`; the outbox worker `worker.py` with its row transitions in `outbox.py` and the error
tree (what the worker must do) in `errors.py`. See delivery/README.md.
"""
