from __future__ import annotations

from rest_framework import serializers

from registration.models import Patient


class PatientSerializer(serializers.ModelSerializer):
    dicom_name = serializers.CharField(read_only=True)
    display_name = serializers.CharField(read_only=True)
    chinese_name = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Full name in characters (e.g. 王小东); split into family/given and romanised to pinyin.",
    )
    confirm_duplicate = serializers.BooleanField(
        write_only=True,
        required=False,
        default=False,
        help_text=(
            "Registering a patient with the same name and birth date as an existing one is refused "
            "(409, code possible_duplicate, with the candidates) unless this is true."
        ),
    )

    class Meta:
        model = Patient
        fields = [
            "id",
            "patient_id",
            "issuer",
            "chinese_name",
            "confirm_duplicate",
            "family_name",
            "given_name",
            "middle_name",
            "name_prefix",
            "name_suffix",
            "ideographic_family",
            "ideographic_given",
            "phonetic_family",
            "phonetic_given",
            "dicom_name",
            "display_name",
            "birth_date",
            "sex",
            "phone",
            "address",
            "other_ids",
            "medical_alerts",
            "allergies",
            "pregnancy_status",
            "is_temporary",
            "merged_into",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "merged_into", "created_at", "updated_at"]
        extra_kwargs = {"patient_id": {"required": False}, "issuer": {"required": False}}
        validators: list = []  # uniqueness is the service's job (clear 409)


class PatientUpdateSerializer(PatientSerializer):
    class Meta(PatientSerializer.Meta):
        fields = [f for f in PatientSerializer.Meta.fields if f != "confirm_duplicate"]
        read_only_fields = [*PatientSerializer.Meta.read_only_fields, "patient_id", "issuer"]


class DuplicateCandidateSerializer(serializers.ModelSerializer):
    display_name = serializers.CharField(read_only=True)

    class Meta:
        model = Patient
        fields = ["id", "patient_id", "issuer", "display_name", "birth_date", "sex"]
