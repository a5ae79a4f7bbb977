"""One shape for every lifecycle: a declared transition table and one guarded UPDATE.

Each app declares its state machine as a :class:`Lifecycle` (a model, its status field and a
table ``action -> Transition``) and performs every transition through one mutator of its own
that, inside one ``transaction.atomic()``:

1. calls :meth:`Lifecycle.advance` — one conditional ``UPDATE … WHERE pk = … AND status = <source>``
   per allowed source status, in the declared order, so the database decides the winner of
   concurrent transitions and the caller learns the true source status (for the event row);
2. writes its own event row (``ProcedureEvent``, ``ReportEvent``, …) and an audit record;
3. schedules side effects with ``transaction.on_commit``.

What differs between lifecycles (event model, audit detail, side effects) stays in the app;
what is the same (the table, the guarded UPDATE, the error when no source matches) is here.

    PIPELINE = Lifecycle(
        model=OutboxMessage,
        name="outbox message",
        transitions={
            "deliver": Transition(sources=("pending",), target="sent"),
            "fail": Transition(sources=("pending",), target="pending"),
            "bury": Transition(sources=("pending",), target="dead"),
            "retry": Transition(sources=("dead",), target="pending"),
        },
    )

    with transaction.atomic():
        source = PIPELINE.advance(pk=msg_id, action="deliver", updates={"sent_at": now})
        OutboxEvent.objects.create(message_id=msg_id, action="deliver", from_status=source, ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from ris.errors import InvalidTransition, NotFound


@dataclass(frozen=True)
class Transition:
    """An action's allowed source statuses (tried in this order) and its target status.

    ``meta`` carries lifecycle-specific facts (an SPS status to mirror, a timestamp field,
    whether a reason is required) so that apps need no subclass for them.
    """

    sources: tuple[str, ...]
    target: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("a transition needs at least one source status")


@dataclass(frozen=True)
class Lifecycle:
    model: type[models.Model]
    transitions: Mapping[str, Transition]
    status_field: str = "status"
    name: str = ""

    @property
    def label(self) -> str:
        return str(self.name or self.model._meta.verbose_name)

    def rule(self, action: str) -> Transition:
        try:
            return self.transitions[action]
        except KeyError:
            raise ValueError(f"{self.label}: no transition named {action!r}") from None

    def allowed_actions(self, status: str) -> list[str]:
        """The actions allowed from ``status``, in declaration order."""
        return [name for name, t in self.transitions.items() if status in t.sources]

    def can(self, action: str, status: str) -> bool:
        return status in self.rule(action).sources

    def statuses(self) -> set[str]:
        out: set[str] = set()
        for t in self.transitions.values():
            out.update(t.sources)
            out.add(t.target)
        return out

    def advance(
        self,
        *,
        pk: Any,
        action: str,
        updates: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        where: models.Q | None = None,
        sources: Iterable[str] | None = None,
    ) -> str:
        """Perform ``action`` on row ``pk``: one conditional UPDATE per allowed source status.

        Returns the source status the row was in. ``updates`` are written together with the
        target status; ``filters`` add conditions (e.g. a lease or an owner) to every UPDATE,
        and so does ``where`` when a condition needs a ``Q`` (an OR of lock states); ``sources`` narrows the declared sources. Raises :class:`NotFound` when there is no
        such row and :class:`InvalidTransition` when the row is in another status (or fails
        ``filters``). Call it inside ``transaction.atomic()`` together with the event row.
        """
        rule = self.rule(action)
        allowed = tuple(sources) if sources is not None else rule.sources
        values = {self.status_field: rule.target, **(updates or {})}
        manager = self.model._default_manager
        for candidate in allowed:
            if candidate not in rule.sources:
                raise ValueError(f"{self.label}: {candidate!r} is not a source of {action!r}")
            query = {"pk": pk, self.status_field: candidate, **(filters or {})}
            rows = manager.filter(where, **query) if where is not None else manager.filter(**query)
            if rows.update(**values):
                return candidate
        current = manager.filter(pk=pk).values_list(self.status_field, flat=True).first()
        if current is None:
            raise NotFound(f"No such {self.label}.")
        raise InvalidTransition(f"Cannot {action.replace('_', ' ')} a {self.label} that is {current}.")

    def advance_where(
        self,
        *,
        action: str,
        filters: Mapping[str, Any],
        updates: Mapping[str, Any] | None = None,
        sources: Iterable[str] | None = None,
    ) -> int:
        """Perform ``action`` on every row matching ``filters`` that is in a source status.

        One conditional ``UPDATE … WHERE <filters> AND status IN (<sources>)``; returns how many
        rows moved (zero is not an error: a bulk transition takes the rows that qualify, e.g.
        the ``received`` objects of a study). For one row whose refusal the caller must know,
        use :meth:`advance`.
        """
        rule = self.rule(action)
        allowed = tuple(sources) if sources is not None else rule.sources
        for candidate in allowed:
            if candidate not in rule.sources:
                raise ValueError(f"{self.label}: {candidate!r} is not a source of {action!r}")
        values = {self.status_field: rule.target, **(updates or {})}
        query = {**filters, f"{self.status_field}__in": allowed}
        return self.model._default_manager.filter(**query).update(**values)
