import os
import sys

import django
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("hello from django")


def info(request):
    return JsonResponse({"sys_prefix": sys.prefix, "django_file": django.__file__,
                         "django_version": django.get_version(), "pid": os.getpid(),
                         "path": request.path, "get": request.GET.dict(), "host": request.get_host(),
                         "uri": request.build_absolute_uri()})


@csrf_exempt
def form(request):
    if request.method != "POST":
        return HttpResponse("POST only", status=405)
    files = {k: f.read().decode("latin-1") for k, f in request.FILES.items()}
    return JsonResponse({"post": request.POST.dict(), "files": files, "method": request.method})


def protected(request):
    # CSRF protection is on here: a POST without a token must get Django's 403.
    return HttpResponse("protected ok")


def boom(request):
    raise RuntimeError("django-boom")
