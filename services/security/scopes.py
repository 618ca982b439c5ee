"""Which agencies a counter may write for, and which KPI scopes a portal may read.

A counter of agency X writes for X and every unit under it: an agency whose parent, in any
version the registry recorded, is X or under X. A unit merged into a successor counts as under
the successor too (the successor took over its territory and open cases), so a counter keeps
writing for the cases of the units it absorbed. Checked against the registry's history, not
one day's snapshot, so a case received before a reorganisation stays reachable.
"""

import weakref
from collections.abc import Iterable

from registry.catalogue import Catalogue
from services.errors import Forbidden
from services.security.tokens import Principal

_TREES: "weakref.WeakKeyDictionary[Catalogue, AgencyTree]" = weakref.WeakKeyDictionary()


class AgencyTree:
    def __init__(self, catalogue: Catalogue) -> None:
        self.known = set(catalogue.agency_history)
        self._up: dict[str, set[str]] = {code: set() for code in self.known}
        for code, history in catalogue.agency_history.items():
            for version in history:
                for above in (version.parent, version.successor):
                    if above and above != code:
                        self._up[code].add(above)
        self._above: dict[str, frozenset[str]] = {}

    @classmethod
    def of(cls, catalogue: Catalogue) -> "AgencyTree":
        """One tree per catalogue snapshot (the store parses a snapshot once per revision)."""
        tree = _TREES.get(catalogue)
        if tree is None:
            tree = _TREES[catalogue] = cls(catalogue)
        return tree

    def above(self, code: str) -> frozenset[str]:
        """`code` and every unit it is (or was) under, directly or not."""
        found = self._above.get(code)
        if found is None:
            seen = {code}
            todo = [code]
            while todo:
                for parent in self._up.get(todo.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        todo.append(parent)
            found = self._above[code] = frozenset(seen)
        return found

    def covers(self, root: str | None, code: str) -> bool:
        return root is None or root in self.above(code)


def check_agencies(principal: Principal, tree: AgencyTree, codes: Iterable[str]) -> None:
    """403 unless the counter's agency covers every (registered) agency named.

    An agency the registry does not know is left to the domain's validation (422): it is not
    anyone's, and saying so is more useful than a 403."""
    if principal.kind != "counter":
        return
    for code in codes:
        if code in tree.known and not tree.covers(principal.agency, code):
            raise Forbidden(f"This client ({principal.describe()}) may not act for agency "
                            f"{code}.", client_agency=principal.agency, agency=code)


def kpi_scope_allowed(principal: Principal, scope: str) -> bool:
    """A provincial portal reads its province and what lies in it; national and admin: all.

    Scopes inside a province name it: province:H56, province-field:H56/…, and agency or
    district codes end in the province code (000.00.06.H56)."""
    if principal.kind == "admin" or (principal.kind == "portal" and principal.province is None):
        return True
    if principal.kind != "portal":
        return False
    province = principal.province
    kind, _, value = scope.partition(":")
    if kind == "province":
        return value == province
    if kind == "province-field":
        return value.partition("/")[0] == province
    if kind in ("agency", "district"):
        return value.rpartition(".")[2] == province and "." in value
    return False
