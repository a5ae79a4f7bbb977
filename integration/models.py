"""HL7 v2 interfaces: registered senders, outbound destinations, the interface message log,
and the transactional outbox (DESIGN.md §5a) with its event log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ris.vr import validate_lo


class Charset(models.TextChoices):
    # MSH-18 values (HL7 table 0211) and the Python codec each one means.
    UTF8 = "UNICODE UTF-8", "UNICODE UTF-8"
    GB18030 = "GB18030", "GB18030"
    LATIN1 = "8859/1", "8859/1"
    ASCII = "ASCII", "ASCII"


CODECS = {
    Charset.UTF8: "utf-8",
    Charset.GB18030: "gb18030",
    Charset.LATIN1: "latin-1",
    Charset.ASCII: "ascii",
    # Accepted spellings seen in the field.
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "GB 18030-2000": "gb18030",
    "8859/1 ": "latin-1",
}


class Sender(models.Model):
    """A system allowed to send us messages, identified by MSH-3 (application) + MSH-4 (facility)."""

    application = models.CharField(_("Sending application (MSH-3)"), max_length=64, validators=[validate_lo])
    facility = models.CharField(
        _("Sending facility (MSH-4)"), max_length=64, blank=True, validators=[validate_lo]
    )
    host = models.CharField(
        _("Source address"),
        max_length=255,
        blank=True,
        help_text=_("If set, messages from this sender are accepted only from this address."),
    )
    default_charset = models.CharField(
        _("Default character set"),
        max_length=16,
        choices=Charset.choices,
        default=Charset.UTF8,
        help_text=_("Used when a message has no MSH-18."),
    )
    description = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(_("Active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application", "facility"]
        constraints = [models.UniqueConstraint(fields=["application", "facility"], name="uniq_hl7_sender")]

    def __str__(self) -> str:
        return f"{self.application}/{self.facility}" if self.facility else self.application

    @property
    def placer_authority(self) -> str:
        """The namespace of this sender's placer order numbers when OBR-2/ORC-2 name none."""
        return self.application


class MessageType(models.TextChoices):
    ORU_R01 = "ORU^R01", "ORU^R01"
    ORM_O01 = "ORM^O01", "ORM^O01"
    OMI_O23 = "OMI^O23", "OMI^O23"


def default_message_types() -> list[str]:
    return [MessageType.ORU_R01, MessageType.ORM_O01]


class Destination(models.Model):
    """A system we send messages to over MLLP (the HIS, an EMR, a results archive)."""

    name = models.CharField(_("Name"), max_length=64, unique=True)
    host = models.CharField(_("Host"), max_length=255)
    port = models.PositiveIntegerField(_("Port"))
    receiving_application = models.CharField(_("Receiving application (MSH-5)"), max_length=64, blank=True)
    receiving_facility = models.CharField(_("Receiving facility (MSH-6)"), max_length=64, blank=True)
    message_types = models.JSONField(
        _("Message types"),
        default=default_message_types,
        help_text=_('Any of "ORU^R01", "ORM^O01", "OMI^O23".'),
    )
    charset = models.CharField(
        _("Character set"), max_length=16, choices=Charset.choices, default=Charset.UTF8
    )
    include_pdf = models.BooleanField(
        _("Attach signed PDF"),
        default=False,
        help_text=_("Adds an OBX of type ED with the signed report PDF."),
    )
    enabled = models.BooleanField(_("Enabled"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def wants(self, message_type: str) -> bool:
        return message_type in (self.message_types or [])


class Direction(models.TextChoices):
    INBOUND = "in", _("Inbound")
    OUTBOUND = "out", _("Outbound")


class LogStatus(models.TextChoices):
    # Inbound: the acknowledgement code we answered. Outbound: the peer's, or the delivery state.
    AA = "AA", _("Accepted (AA)")
    AE = "AE", _("Error (AE)")
    AR = "AR", _("Rejected (AR)")
    DUPLICATE = "duplicate", _("Duplicate (original ACK resent)")
    FAILED = "failed", _("Delivery failed")


class InterfaceMessage(models.Model):
    """The interface message log: one row per inbound message and per outbound delivery attempt
    that reached a peer. ``raw`` is for administrators only and never written to process logs."""

    direction = models.CharField(max_length=3, choices=Direction.choices)
    sender = models.ForeignKey(
        Sender, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    destination = models.ForeignKey(
        Destination, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    # MSH-3/MSH-4 as received (the sender may be unknown).
    sending_application = models.CharField(max_length=64, blank=True)
    sending_facility = models.CharField(max_length=64, blank=True)
    peer = models.CharField(max_length=64, blank=True, help_text="peer address")
    message_type = models.CharField(max_length=16, blank=True, db_index=True)
    control_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=LogStatus.choices)
    error = models.CharField(max_length=255, blank=True)
    error_field = models.CharField(max_length=32, blank=True)
    charset = models.CharField(max_length=16, blank=True)
    raw = models.TextField(blank=True)
    ack = models.TextField(blank=True, help_text="the acknowledgement sent (inbound) or received (outbound)")
    outbox = models.ForeignKey(
        "OutboxMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    patient = models.ForeignKey(
        "registration.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["direction", "received_at"], name="ifmsg_dir_at"),
            models.Index(fields=["sender", "received_at"], name="ifmsg_sender_at"),
            models.Index(fields=["destination", "received_at"], name="ifmsg_dest_at"),
        ]
        constraints = [
            # A sender's control ID is applied once; a repeat gets the original ACK. A message
            # rejected (AR: not processed at all) may be sent again under the same ID.
            models.UniqueConstraint(
                fields=["sender", "control_id"],
                condition=models.Q(direction="in", sender__isnull=False)
                & ~models.Q(status__in=["duplicate", "AR"]),
                name="uniq_inbound_control_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.message_type} {self.control_id} {self.status}"


class OutboxState(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    DEAD = "dead", _("Dead")


class OutboxMessage(models.Model):
    """A message to deliver, written in the same transaction as the event it announces.

    ``facts`` references what to build (procedure/report and the event's status and time);
    the HL7 text is built once, at the first attempt, and kept in ``message`` so that every
    retry resends the same bytes with the same control ID (MSH-10).
    """

    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="outbox")
    message_type = models.CharField(max_length=16, choices=MessageType.choices)
    event = models.CharField(max_length=32, help_text="what happened: signed, scheduled, arrived…")
    ordering_key = models.CharField(max_length=64, help_text="deliveries with the same key go in order")
    facts = models.JSONField(default=dict)
    control_id = models.CharField(max_length=20, unique=True)
    message = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=OutboxState.choices, default=OutboxState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    ack_code = models.CharField(max_length=2, blank=True)
    patient = models.ForeignKey(
        "registration.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["destination", "ordering_key", "id"],
                name="outbox_pending_order",
                condition=models.Q(state="pending"),
            ),
            models.Index(fields=["state", "next_attempt_at"], name="outbox_state_next"),
        ]

    def __str__(self) -> str:
        return f"{self.message_type} {self.control_id} → {self.destination_id} ({self.state})"


class OutboxEvent(models.Model):
    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.message_id} {self.action} {self.from_state}->{self.to_state}"
