"""liege: loading PasteDeploy apps (`paste = config:/path/app.ini`), as uWSGI's `uwsgi_paste_loader`
(plugins/python/pyloader.c) does: optionally `logging.config.fileConfig` of the file first (`paste-logger`),
then `paste.deploy.loadapp(uri[, name])`.
"""
import logging.config
import os


def setup_logging(path):
    # PasteDeploy gives its sections `here` and `__file__`; the logging sections get them too, so a handler
    # may write to %(here)s/app.log as it would under pserve.
    path = os.path.abspath(path)
    logging.config.fileConfig(path, defaults={"here": os.path.dirname(path), "__file__": path})


def load(uri, name):
    from paste.deploy import loadapp

    return loadapp(uri) if name is None else loadapp(uri, name)
