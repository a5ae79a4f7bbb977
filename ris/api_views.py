from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_record

from .forms import USERNAME_MAX_LENGTH
from .roles import user_roles


class TokenRequestSerializer(AuthTokenSerializer):
    username = serializers.CharField(label="Username", max_length=USERNAME_MAX_LENGTH, write_only=True)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenView(ObtainAuthToken):
    """Exchange username + password for an API token (subject to login lockout)."""

    permission_classes = [AllowAny]
    serializer_class = TokenRequestSerializer

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponseSerializer})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class WhoAmISerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class WhoAmIView(APIView):
    required_actions = {"get": "authenticated"}

    @extend_schema(responses=WhoAmISerializer)
    def get(self, request):
        return Response({"username": request.user.get_username(), "roles": sorted(user_roles(request.user))})


__all__ = ["TokenView", "WhoAmIView", "audit_record"]
