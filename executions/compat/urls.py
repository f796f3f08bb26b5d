from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from executions.compat import judge0, piston


@csrf_exempt
def judge0_not_found(request, *args, **kwargs):
    return JsonResponse({"status": 404, "error": "Not Found"}, status=404)


@csrf_exempt
def piston_not_found(request, *args, **kwargs):
    return JsonResponse({"message": "Not found"}, status=404)


# Paths match with or without a trailing slash, as in the native API.
judge0_urls = [
    re_path(r"^about/?$", judge0.AboutView.as_view(), name="judge0-about"),
    re_path(r"^config_info/?$", judge0.ConfigInfoView.as_view(), name="judge0-config-info"),
    re_path(r"^languages/?$", judge0.LanguagesView.as_view(), name="judge0-languages"),
    re_path(r"^languages/(?P<language_id>[0-9]{1,9})/?$", judge0.LanguageView.as_view(), name="judge0-language"),
    re_path(r"^statuses/?$", judge0.StatusesView.as_view(), name="judge0-statuses"),
    re_path(r"^submissions/?$", judge0.SubmissionsView.as_view(), name="judge0-submissions"),
    re_path(r"^submissions/batch/?$", judge0.BatchView.as_view(), name="judge0-batch"),
    re_path(r"^submissions/(?P<token>[^/]+)/?$", judge0.SubmissionView.as_view(), name="judge0-submission"),
    re_path(r"^", judge0_not_found),
]

# The key-less paths first: "api" is no key. Named views label the request metrics, never the path.
piston_urls = [
    re_path(r"^api/v2/runtimes/?$", piston.RuntimesView.as_view(), name="piston-runtimes"),
    re_path(r"^api/v2/execute/?$", piston.ExecuteView.as_view(), name="piston-execute"),
    re_path(r"^(?P<key>[^/]+)/api/v2/runtimes/?$", piston.KeyRuntimesView.as_view(), name="piston-key-runtimes"),
    re_path(r"^(?P<key>[^/]+)/api/v2/execute/?$", piston.KeyExecuteView.as_view(), name="piston-key-execute"),
    re_path(r"^", piston_not_found),
]
