# SimpleRouter like every other app: no ".json" format-suffix routes (actions do not take
# a ``format`` argument) and no second browsable API root.
from rest_framework.routers import SimpleRouter

from .views import CriticalResultViewSet, PeerReviewViewSet, ReportViewSet

router = SimpleRouter()
router.register("reports", ReportViewSet, basename="report")
router.register("critical-results", CriticalResultViewSet, basename="critical-result")
router.register("peer-reviews", PeerReviewViewSet, basename="peer-review")

urlpatterns = router.urls
