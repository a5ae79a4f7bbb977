from rest_framework.routers import SimpleRouter

from .views import WorklistViewSet

router = SimpleRouter()
router.register("worklist", WorklistViewSet, basename="worklist")

urlpatterns = router.urls
