from rest_framework.routers import SimpleRouter

from .views import OrderViewSet, ProcedureTypeViewSet, ProcedureViewSet, StationViewSet

router = SimpleRouter()
router.register("stations", StationViewSet, basename="station")
router.register("procedure-types", ProcedureTypeViewSet, basename="procedure-type")
router.register("orders", OrderViewSet, basename="order")
router.register("procedures", ProcedureViewSet, basename="procedure")

urlpatterns = router.urls
