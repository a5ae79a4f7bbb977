from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _move_orders(sender, *, source_patient_id: int, target_patient_id: int, **kwargs) -> dict[str, int]:
    from .services import orders_move_patient

    moved = orders_move_patient(source_patient_id=source_patient_id, target_patient_id=target_patient_id)
    return {"orders_moved": moved}


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = _("Scheduling")

    def ready(self) -> None:
        from registration.signals import patient_merging

        patient_merging.connect(_move_orders, dispatch_uid="scheduling.move_orders")
