"""The WSGI application: Django, with a lean middleware list for API-key requests.

The web server (sandbox_project/serve.py) runs it through sandbox_project/rsgi.py, which reads the
request body before calling it. A request under /api/ that carries an API key goes to a Django
handler with settings.API_KEY_MIDDLEWARE: no sessions, CSRF, messages or frame options, which only
the browser uses.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")


def lean_handler():
    """Django's WSGI handler with settings.API_KEY_MIDDLEWARE instead of settings.MIDDLEWARE."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    class LeanWSGIHandler(WSGIHandler):
        def load_middleware(self, is_async=False):
            # Django builds the chain from settings.MIDDLEWARE only; this runs once, at start-up.
            full = settings.MIDDLEWARE
            settings.MIDDLEWARE = settings.API_KEY_MIDDLEWARE
            try:
                super().load_middleware(is_async)
            finally:
                settings.MIDDLEWARE = full

    return LeanWSGIHandler()


def build():
    full = get_wsgi_application()
    lean = lean_handler()

    def application(environ, start_response):
        # An empty X-API-Key is not a key: the session may still authenticate such a request.
        if environ["PATH_INFO"].startswith("/api/") and (
            environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_X_API_KEY", "").strip()
        ):
            return lean(environ, start_response)
        return full(environ, start_response)

    return application


application = build()
