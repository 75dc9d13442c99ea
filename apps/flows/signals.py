from django.dispatch import Signal

# Sent after commit when a run reaches COMPLETED or ERROR (nothing more can run, or killed), with `flow_run`.
flow_run_finished = Signal()
