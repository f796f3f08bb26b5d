from django.urls import path, re_path

from executions.api import views

# Paths match with or without a trailing slash: an API client should not get a redirect.
urlpatterns = [
    re_path(r"^execute/?$", views.ExecuteRawView.as_view(), name="execute"),
    re_path(r"^executions/?$", views.ExecutionListCreateView.as_view(), name="executions"),
    re_path(r"^executions/batch/?$", views.ExecutionBatchView.as_view(), name="executions-batch"),
    re_path(r"^languages/?$", views.LanguagesView.as_view(), name="languages"),
    path("executions/<uuid:execution_id>", views.ExecutionDetailView.as_view(), name="execution-detail"),
    path("executions/<uuid:execution_id>/", views.ExecutionDetailView.as_view()),
    path("executions/<uuid:execution_id>/cancel", views.ExecutionCancelView.as_view(), name="execution-cancel"),
    path("executions/<uuid:execution_id>/cancel/", views.ExecutionCancelView.as_view()),
    path(
        "executions/<uuid:execution_id>/deliveries",
        views.ExecutionDeliveriesView.as_view(),
        name="execution-deliveries",
    ),
    path("executions/<uuid:execution_id>/deliveries/", views.ExecutionDeliveriesView.as_view()),
    path("executions/<uuid:execution_id>/events", views.ExecutionEventsView.as_view(), name="execution-events"),
    path("executions/<uuid:execution_id>/events/", views.ExecutionEventsView.as_view()),
]

# Anything else under /api/v1/ is a JSON 404, in DEBUG too (Django's debug page is HTML).
urlpatterns.append(re_path(r"^", views.not_found))
