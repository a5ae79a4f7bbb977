"""Pytest plugin: the DICOM node in-process on a free 127.0.0.1 port (see docs/CONTRACTS.md).

    def test_echo(dicom_node):           # uses transactional_db: the node's threads need
        ...dicom_node.host, .port, .ae_title   # committed rows (e.g. the calling Station)

    def test_custom(dicom_node_factory):
        node = dicom_node_factory(acse_timeout=0.5)           # any DicomNode keyword
        tls = dicom_node_factory(ssl_context=ctx, plain=False)  # TLS only, .tls_port

Nodes are stopped after the test. Helpers for clients: ``register_station(ae_title, **fields)``
creates an active Station the node will accept; ``dcmtk(...)`` runs a DCMTK tool with a timeout.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.fixture
def dicom_node_factory(transactional_db):
    from ris.dicom import DicomNode

    nodes: list[DicomNode] = []

    def make(**kwargs) -> DicomNode:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        if kwargs.get("ssl_context") is not None:
            kwargs.setdefault("tls_port", 0)
        node = DicomNode(**kwargs).start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop(grace=1.0)


@pytest.fixture
def dicom_node(dicom_node_factory):
    """The node with every service module of settings.RIS_DICOM_SERVICES, on a free port."""
    return dicom_node_factory()


@pytest.fixture
def register_station(transactional_db):
    """``register_station("CT1", modality="CT", host="127.0.0.1")`` → an active Station."""
    from scheduling.models import Station

    def make(ae_title: str, **fields):
        fields.setdefault("name", ae_title[:16])
        fields.setdefault("modality", "CT")
        fields.setdefault("room", "R1")
        station, _ = Station.objects.update_or_create(ae_title=ae_title, defaults={"active": True, **fields})
        return station

    return make


def dcmtk(
    tool: str, *args: str, timeout: float = 30, check: bool = False, **kwargs
) -> subprocess.CompletedProcess:
    """Run a DCMTK command-line tool (echoscu, findscu, ...) and capture its output."""
    exe = shutil.which(tool)
    if exe is None:
        pytest.fail(f"DCMTK tool {tool} is not installed (apt package dcmtk; make test installs it)")
    return subprocess.run([exe, *args], capture_output=True, timeout=timeout, check=check, **kwargs)
