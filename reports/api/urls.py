from rest_framework.routers import DefaultRouter

from .views import CriticalResultViewSet, PeerReviewViewSet, ReportViewSet

router = DefaultRouter()
router.register("reports", ReportViewSet, basename="report")
router.register("critical-results", CriticalResultViewSet, basename="critical-result")
router.register("peer-reviews", PeerReviewViewSet, basename="peer-review")

urlpatterns = router.urls
