"""Production's URLs plus POST /bench/bare: no authentication, no database, no queue."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from sandbox_project import urls


# csrf_exempt as the API's views are (DRF exempts them), so both go through the same middleware.
@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    # Read the body as the API does, so that both pay for receiving it.
    request.body
    return JsonResponse({"task_id": "00000000-0000-0000-0000-000000000000", "status": "queued"}, status=202)


urlpatterns = [path("bench/bare", bare), *urls.urlpatterns]

handler400 = urls.handler400
handler403 = urls.handler403
handler404 = urls.handler404
handler500 = urls.handler500
