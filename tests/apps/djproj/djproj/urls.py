from django.urls import path

from djproj import views

urlpatterns = [
    path("", views.index),
    path("info/", views.info),
    path("form/", views.form),
    path("protected/", views.protected),
    path("boom/", views.boom),
]
