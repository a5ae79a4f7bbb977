from rest_framework.routers import SimpleRouter

from .views import DestinationViewSet, InterfaceMessageViewSet, OutboxViewSet, SenderViewSet

router = SimpleRouter()
router.register("integration/senders", SenderViewSet, basename="hl7-sender")
router.register("integration/destinations", DestinationViewSet, basename="hl7-destination")
router.register("integration/outbox", OutboxViewSet, basename="hl7-outbox")
router.register("integration/messages", InterfaceMessageViewSet, basename="hl7-message")

urlpatterns = router.urls
