"""Notifications: e-mail and signed webhooks to the people and systems that watch a batch, on a
final failure, a long-running execution and a flow run's end; every one sent is recorded."""
