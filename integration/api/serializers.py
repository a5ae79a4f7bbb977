from __future__ import annotations

from rest_framework import serializers

from integration.models import Destination, InterfaceMessage, MessageType, OutboxMessage, Sender


class SenderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Sender
        fields = [
            "id",
            "application",
            "facility",
            "host",
            "default_charset",
            "description",
            "active",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class DestinationSerializer(serializers.ModelSerializer):
    message_types = serializers.ListField(child=serializers.ChoiceField(choices=MessageType.choices))

    class Meta:
        model = Destination
        fields = [
            "id",
            "name",
            "host",
            "port",
            "receiving_application",
            "receiving_facility",
            "message_types",
            "charset",
            "include_pdf",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def validate_port(self, value):
        if not 1 <= value <= 65535:
            raise serializers.ValidationError("Port must be 1-65535.")
        return value


class OutboxMessageSerializer(serializers.ModelSerializer):
    destination = serializers.CharField(source="destination.name", read_only=True)

    class Meta:
        model = OutboxMessage
        fields = [
            "id",
            "destination",
            "message_type",
            "event",
            "ordering_key",
            "control_id",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error",
            "ack_code",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class InterfaceMessageSerializer(serializers.ModelSerializer):
    sender = serializers.StringRelatedField()
    destination = serializers.StringRelatedField()

    class Meta:
        model = InterfaceMessage
        fields = [
            "id",
            "direction",
            "sender",
            "destination",
            "sending_application",
            "sending_facility",
            "peer",
            "message_type",
            "control_id",
            "status",
            "error",
            "error_field",
            "charset",
            "received_at",
            "processed_at",
        ]
        read_only_fields = fields


class InterfaceMessageRawSerializer(InterfaceMessageSerializer):
    class Meta(InterfaceMessageSerializer.Meta):
        fields = [*InterfaceMessageSerializer.Meta.fields, "raw", "ack"]
        read_only_fields = fields
