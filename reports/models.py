# Models for reports.
