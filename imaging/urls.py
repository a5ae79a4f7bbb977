from django.urls import path

from . import dicomweb, qido_rs, views, wado_rs

app_name = "imaging"

urlpatterns = [
    path("imaging/reconciliation/", views.reconciliation, name="reconciliation"),
    path("imaging/reconciliation/<int:pk>/", views.reconciliation_item, name="reconciliation_item"),
    path("imaging/studies/", views.study_list, name="study_list"),
    path("imaging/studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("imaging/studies/<int:pk>/unlink/", views.study_unlink, name="study_unlink"),
    path("imaging/conflicts/<int:pk>/resolve/", views.conflict_resolve, name="conflict_resolve"),
    path("imaging/received/<int:pk>/retry/", views.received_retry, name="received_retry"),
    path("imaging/instances/<int:pk>/thumbnail.jpg", views.thumbnail, name="thumbnail"),
    # DICOMweb (PS3.18): WADO-URI, WADO-RS, STOW-RS.
    path("wado", dicomweb.WadoUriView.as_view(), name="wado"),
    # GET /dicomweb/studies is QIDO-RS, POST is STOW-RS (qido_rs.StudiesView inherits it).
    path("dicomweb/studies", qido_rs.StudiesView.as_view(), name="stow"),
    # QIDO-RS (PS3.18 §10.6).
    path("dicomweb/series", qido_rs.SeriesSearchView.as_view(), name="qido_series"),
    path("dicomweb/instances", qido_rs.InstancesSearchView.as_view(), name="qido_instances"),
    path(
        "dicomweb/studies/<str:study_uid>/series",
        qido_rs.SeriesSearchView.as_view(),
        name="qido_study_series",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/instances",
        qido_rs.InstancesSearchView.as_view(),
        name="qido_study_instances",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances",
        qido_rs.InstancesSearchView.as_view(),
        name="qido_series_instances",
    ),
    path("dicomweb/studies/<str:study_uid>", dicomweb.WadoRsView.as_view(), name="wado_rs_study"),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>",
        dicomweb.WadoRsView.as_view(),
        name="wado_rs_series",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>",
        dicomweb.WadoRsView.as_view(),
        name="wado_rs_instance",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/rendered",
        dicomweb.RenderedView.as_view(),
        name="wado_rs_rendered",
    ),
    # WADO-RS metadata, frames, bulk data, thumbnails (imaging.wado_rs).
    path(
        "dicomweb/studies/<str:study_uid>/metadata",
        wado_rs.MetadataView.as_view(),
        name="wado_rs_study_metadata",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/metadata",
        wado_rs.MetadataView.as_view(),
        name="wado_rs_series_metadata",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/metadata",
        wado_rs.MetadataView.as_view(),
        name="wado_rs_instance_metadata",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/frames/<str:frames>",
        wado_rs.FramesView.as_view(),
        name="wado_rs_frames",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/bulkdata/<str:tag>",
        wado_rs.BulkdataView.as_view(),
        name="wado_rs_bulkdata",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/thumbnail",
        wado_rs.ThumbnailView.as_view(),
        name="wado_rs_study_thumbnail",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/thumbnail",
        wado_rs.ThumbnailView.as_view(),
        name="wado_rs_series_thumbnail",
    ),
    path(
        "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/thumbnail",
        wado_rs.ThumbnailView.as_view(),
        name="wado_rs_instance_thumbnail",
    ),
]
