from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _fix_pydicom_iso_ir_58() -> None:
    """Decode and encode ISO 2022 IR 58 (GB2312 with code extensions) correctly.

    pydicom 3.0 lists ``iso_ir_58`` among the encodings whose escape sequences Python's codec
    handles, but Python's ``iso_ir_58`` is plain GB2312: ``ESC $ ) A`` would end up inside
    decoded names (and be missing from encoded ones). Without it in that list pydicom strips
    and adds the escape sequence itself (PS3.5 §6.1.2.5, Annex J example).
    """
    from pydicom import charset

    charset.handled_encodings = tuple(e for e in charset.handled_encodings if e != "iso_ir_58")


class ImagingConfig(AppConfig):
    name = "imaging"
    verbose_name = _("Imaging")

    def ready(self) -> None:
        from scheduling import signals

        from . import receivers

        _fix_pydicom_iso_ir_58()
        signals.order_created.connect(receivers.on_order_created, dispatch_uid="imaging.order_created")
