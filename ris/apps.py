from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RisConfig(AppConfig):
    name = "ris"
    verbose_name = _("RIS core")
