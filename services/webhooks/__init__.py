"""Webhooks: push subscriptions to the event log, and the worker that delivers them.

`store.py` is the one Redis adapter for subscriptions (the API manages them through it; the
worker delivers them through it); `targets.py` guards where a webhook may go; `messages.py`
makes and signs the requests; `runner.py` delivers one subscription, `worker.py` all of
them; `app.py` is the worker's composition root (`chancery deliver`).
"""
