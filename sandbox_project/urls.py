from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from executions import metrics, pages, views
from executions.compat.urls import judge0_urls, piston_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("executions.api.urls")),
    # Other platforms' APIs over this one (executions/compat).
    path("judge0/", include(judge0_urls)),
    path("piston/", include(piston_urls)),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # The browser page.
    path("", pages.page, name="home"),
    path("executions/<uuid:execution_id>", pages.page, name="execution-page"),
    path("tenant", pages.choose_tenant, name="choose-tenant"),
    path("login/", pages.login, name="login"),
    path("logout/", pages.logout, name="logout"),
]

handler400 = "executions.api.errors.handler400"
handler403 = "executions.api.errors.handler403"
handler404 = "executions.api.errors.handler404"
handler500 = "executions.api.errors.handler500"
