from rest_framework.routers import SimpleRouter

from .views import FigureViewSet, MaterialItemViewSet

router = SimpleRouter()
router.register("department/figures", FigureViewSet, basename="department-figure")
router.register("department/materials", MaterialItemViewSet, basename="department-material")

urlpatterns = router.urls
