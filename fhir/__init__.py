"""The FHIR R4 facade at /fhir/ (docs/fhir.md).

This package shares its top-level name with the ``fhir`` package that ``fhir.resources``
installs. The project directory comes first on ``sys.path``, so ``import fhir`` finds this
app; extending ``__path__`` lets ``fhir.resources`` still resolve to the installed models.
A test guards both imports.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
