from rest_framework.routers import SimpleRouter

from .views import ReconciliationViewSet, StudyViewSet

router = SimpleRouter()
router.register("imaging/studies", StudyViewSet, basename="study")
router.register("imaging/reconciliation", ReconciliationViewSet, basename="reconciliation")

urlpatterns = router.urls
