"""Django's StreamingHttpResponse after translation.activate(): the generator must speak the activated language.

"Yes"/"No" come from Django's own German catalog (django/conf/locale/de); USE_I18N is on.
"""
import time

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="liege-tests-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    USE_I18N=True,
    LANGUAGE_CODE="en-us",
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import translation  # noqa: E402
from django.utils.translation import gettext, gettext_lazy  # noqa: E402


def stream(request):
    translation.activate(request.GET.get("lang", "de"))

    def generate():
        yield gettext("Yes") + "\n"
        time.sleep(0.005)
        yield str(gettext_lazy("No")) + "\n"
        yield translation.get_language() + "\n"

    return StreamingHttpResponse(generate(), content_type="text/plain; charset=utf-8")


def language(request):
    return HttpResponse(translation.get_language() + "\n", content_type="text/plain")


urlpatterns = [path("stream/", stream), path("language/", language)]
application = get_wsgi_application()
