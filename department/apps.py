from django.apps import AppConfig


class DepartmentConfig(AppConfig):
    name = "department"
