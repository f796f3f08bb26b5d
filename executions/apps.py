from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from executions import checks  # noqa: F401  (registers the system checks)
        from executions import events, store, webhooks
        from executions.models import Execution, execution_ended, status_changed

        # First: the mirror of its unfinished state goes before anything announces the end.
        execution_ended.connect(store.forget_state, sender=Execution, dispatch_uid="store")
        execution_ended.connect(webhooks.on_execution_ended, sender=Execution, dispatch_uid="webhooks")
        execution_ended.connect(events.on_execution_ended, sender=Execution, dispatch_uid="events")
        status_changed.connect(events.on_status_changed, sender=Execution, dispatch_uid="events")
