"""A queryset the ORM compiles once and the hot paths run again with other values.

Building a query in the ORM costs more than the database takes to answer it (docs/performance.md:
~1 ms of CPU per query on the API's hot reads, the answer well under that). Where the same query
runs on every request with only its values changing (the token of a request, the flag asked),
`Compiled` asks the ORM for the SQL once, from the queryset the rest of the code uses, so the
rule stays in one place (e.g. ApiToken.objects.usable()); later calls run that SQL with the new
values and turn the rows into Python values with the ORM's own converters.

A value is marked by a placeholder string passed where the queryset takes it; every other
parameter of the compiled SQL is a constant of the queryset (a status list, a flag). A queryset
whose parameters depend on the moment (`timezone.now()` in a filter) must not be compiled: the
first call's moment would stick; `Compiled` refuses any parameter it cannot account for when
`exact=True` (the default), so such a change fails loudly instead of answering stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet


class Compiled:
    """`build(*placeholders)` -> a values_list queryset; `rows(*values)` runs it for `values`."""

    def __init__(self, build: Callable[..., QuerySet], arity: int, exact: bool = True) -> None:
        self._build = build
        self._arity = arity
        self._exact = exact
        self._compiled: tuple[Any, str, list[Any], list[int | None]] | None = None

    def _compile(self) -> tuple[Any, str, list[Any], list[int | None]]:
        markers = [f"compiled-{uuid.uuid4().hex}" for _ in range(self._arity)]
        queryset = self._build(*markers)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        slots = [markers.index(p) if p in markers else None for p in params]
        # A value may be used more than once (the environment of a filter and of an
        # annotation's condition): every occurrence is bound to it.
        if {s for s in slots if s is not None} != set(range(self._arity)):
            raise ValueError("Each placeholder must appear in the compiled query.")
        if self._exact and None in slots:
            raise ValueError(
                f"Compiled query has parameters besides its placeholders: {params!r}; "
                "pass exact=False if they are constants."
            )
        return compiler, sql, list(params), slots

    def rows(self, *values: Any) -> list[tuple[Any, ...]]:
        """The queryset's rows for these values, as values_list would give them."""
        if self._compiled is None:
            self._compiled = self._compile()
        compiler, sql, params, slots = self._compiled
        bound = [
            values[slot] if slot is not None else p for p, slot in zip(params, slots, strict=True)
        ]
        with connections[compiler.using].cursor() as cursor:
            cursor.execute(sql, bound)
            fetched = cursor.fetchall()
        return list(compiler.results_iter(results=[fetched], tuple_expected=True))
