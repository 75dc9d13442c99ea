from django.dispatch import Signal

# Sent once per failure chain: when an execution ends in ERROR and no retry follows.
execution_failed = Signal()

# Sent when an execution ends (COMPLETED, ERROR, SKIPPED), inside the transaction that ends it, with
# `execution` and `retried` (a retry follows): the flow step moves its run in that same transaction.
execution_ended = Signal()

# Sent when an execution of a flow run is added (a restart) or counts differently for its run
# without ending (skipped in its flow), inside the transaction: the flow step listens.
execution_changed = Signal()
