from django.dispatch import Signal

# Sent once per failure chain: when an execution ends in ERROR and no retry follows.
execution_failed = Signal()
