from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from executions import checks  # noqa: F401  (registers the system checks)
        from executions import events, store, webhooks
        from executions.models import Execution, execution_ended, execution_settled, status_changed

        # The mirror of its unfinished state goes as soon as the row is terminal, before anything
        # announces the end.
        execution_ended.connect(store.forget_state, sender=Execution, dispatch_uid="store")
        # The end is announced once the result is whole (a run cancelled while running: once its
        # output is written).
        execution_settled.connect(webhooks.on_execution_settled, sender=Execution, dispatch_uid="webhooks")
        execution_settled.connect(events.on_execution_settled, sender=Execution, dispatch_uid="events")
        status_changed.connect(events.on_status_changed, sender=Execution, dispatch_uid="events")
