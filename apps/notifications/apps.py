from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from apps.engine.signals import execution_failed
        from apps.flows.signals import flow_run_finished
        from apps.notifications import receivers

        execution_failed.connect(receivers.on_execution_failed, dispatch_uid="notifications.execution_failed")
        flow_run_finished.connect(receivers.on_flow_run_finished, dispatch_uid="notifications.flow_run_finished")
