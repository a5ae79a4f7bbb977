import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")

app = Celery("ris")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _eager_without_broker(sender, **kwargs):
    """Without a broker tasks run eagerly; Celery still opens a producer for each eager call,
    and a connection without a URL makes kombu warn "No hostname was supplied". The in-memory
    transport is what that producer gets instead: no network, no warning."""
    if sender.conf.task_always_eager and not sender.conf.broker_url:
        # The Django settings use the CELERY_ namespace, whose keys win over the plain ones.
        sender.conf.CELERY_BROKER_URL = "memory://localhost/"
