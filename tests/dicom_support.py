"""Pytest plugin: fixtures to run the DICOM node in-process on a free port (see docs/CONTRACTS.md)."""
