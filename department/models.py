# Models for department.
