"""Which MLRoleBindings record which role assignment: the live index a binding consults
before it deletes an assignment it created, so that a grant two bindings share is handed
over to the one that stays instead of being deleted under it (controllers.mlrolebinding).

kopf keeps the index from its watch of every binding the operator sees. A binding of a
namespace the operator does not watch is not in it: that binding finds the assignment
gone at its next look and creates it again.
"""

from __future__ import annotations

from typing import Any

import kopf

from aml_identity.api import GROUP, VERSION

HOLDER_INDEX = "assignment_holders"


def register(registry: kopf.OperatorRegistry) -> None:
    @kopf.index(GROUP, VERSION, "mlrolebindings", registry=registry, id=HOLDER_INDEX)
    def index_holders(
        namespace: str | None, name: str, uid: str, status: kopf.Status, **_: Any
    ) -> dict[str, tuple[str, str, str]]:
        return {
            str(a["name"]).lower(): (namespace or "", name, uid)
            for a in status.get("assignments") or []
            if a.get("name")
        }

    @kopf.on.startup(registry=registry, id="assignment-holders")
    async def share(memo: Any, **kwargs: Any) -> None:
        # The index object stays live for the operator's lifetime; every copy of the
        # Deps made for a reconcile refers to it.
        memo.shared.deps.assignment_holders = kwargs[HOLDER_INDEX]
