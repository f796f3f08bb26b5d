from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("executions.api.urls")),
]

handler400 = "executions.api.errors.handler400"
handler403 = "executions.api.errors.handler403"
handler404 = "executions.api.errors.handler404"
handler500 = "executions.api.errors.handler500"
