"""Same-transaction hooks: the outbox rows are written inside the transition's transaction.

``scheduling`` and ``reports`` send their ``*_recorded`` signals *inside* the transaction of
each transition (their ``*_transitioned`` signals are sent on commit, too late for an outbox:
a crash between commit and the on-commit handler would lose the message). Django's signal
registry is the small hook: the services do not import this app, and a receiver that raises
rolls the transition back with it.
"""

from __future__ import annotations


def connect() -> None:
    from reports import signals as report_signals
    from scheduling import signals as scheduling_signals

    from .services import outbox

    scheduling_signals.procedure_recorded.connect(
        outbox.on_procedure_recorded, dispatch_uid="integration-procedure"
    )
    report_signals.report_recorded.connect(outbox.on_report_recorded, dispatch_uid="integration-report")
