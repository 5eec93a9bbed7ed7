# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the pure core.

Every user error is a :class:`Problem` that names the resource kind, the resource name, the field
path, what is wrong and the fix.  Problems are collected (never raised one by one) so that a run
reports every problem of the input at once; :class:`HostfwError` carries them to the adapter,
which prints one line per problem.  Nothing in the core raises a bare exception for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional


@dataclass(frozen=True)
class Problem:
    """One problem in the input.

    ``str(problem)`` is the message shown to the user, for example::

        GlobalNetworkPolicy node-fw: spec.ingress[0].protocol: 'tcp' is not a protocol (use TCP)

    ``message`` holds what is wrong followed by the fix in parentheses.  ``origin`` says where the
    document came from (a file and document index, or an inventory variable); it is shown on a
    separate line by the adapters and is not part of ``str()`` so that messages stay stable.
    """

    kind: str
    name: str
    path: str
    message: str
    origin: Optional[str] = None

    def __str__(self) -> str:
        where = self.path + ": " if self.path else ""
        return "%s %s: %s%s" % (self.kind, self.name or "<unnamed>", where, self.message)

    def describe(self) -> str:
        """The message plus its origin, for humans."""
        if self.origin:
            return "%s\n    (from %s)" % (self, self.origin)
        return str(self)


class HostfwError(Exception):
    """Invalid input: one or more problems.  Nothing may change on any host."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: List[Problem] = list(problems)
        super().__init__(self.render())

    def render(self, with_origin: bool = False) -> str:
        lines = [p.describe() if with_origin else str(p) for p in self.problems]
        head = "%d problem%s in the hostfw input:" % (len(lines), "" if len(lines) == 1 else "s")
        return "\n".join([head] + lines)


class Collector:
    """Collects problems while a validator walks the input: the one problem sink of the core."""

    def __init__(self) -> None:
        self.problems: List[Problem] = []

    def add(self, kind: str, name: str, path: str, message: str, origin: Optional[str] = None) -> None:
        self.problems.append(Problem(kind, name, path, message, origin))

    def scope(self, kind: str, name: str, origin: Optional[str] = None) -> "Scope":
        """The view of this collector that one document's validation writes to."""
        return Scope(self, kind, name, origin)

    def raise_if_any(self) -> None:
        if self.problems:
            raise HostfwError(self.problems)


class Scope:
    """The problems of one document, added to a :class:`Collector`: every problem it reports
    names the document's kind, name and origin.  ``failed`` tells whether it reported any."""

    __slots__ = ("collector", "kind", "name", "origin", "failed")

    def __init__(self, collector: Collector, kind: str, name: str, origin: Optional[str] = None) -> None:
        self.collector = collector
        self.kind = kind
        self.name = name
        self.origin = origin
        self.failed = False

    def err(self, path: str, what: str, fix: str) -> None:
        """Report ``what`` is wrong at ``path`` and the ``fix``."""
        self.failed = True
        self.collector.problems.append(Problem(self.kind, self.name, path, "%s (%s)" % (what, fix), self.origin))
