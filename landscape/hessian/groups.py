"""Parameter groups: the principal sub-blocks of a curvature operator that per-layer and per-group spectra use.

A group is a label and a list of parameter names. ``params`` selects them by name or by shell-style glob
pattern (``fnmatch``, e.g. ``"layer1.*"`` or ``"*.bn*.weight"``), matched against the trainable
parameters' names in module order:

* a string: one group, labelled by the pattern;
* a sequence of strings: one group per pattern, labelled by it;
* a mapping ``{label: pattern or patterns}``: one group per label, of the parameters any pattern matches.

``per_layer=True`` splits the selected parameters (all, without ``params``) by module (the name up to
its last dot, e.g. ``layer1.0.conv1``), one group per module, labelled by the module name. Without
either option there are no groups (the whole operator). A pattern that matches nothing is an error.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence

from training.errors import UserError

Params = str | Sequence[str] | Mapping[str, str | Sequence[str]]


def parameter_groups(
    names: Sequence[str], *, per_layer: bool = False, params: Params | None = None
) -> list[tuple[str, list[str]]] | None:
    """``[(label, parameter names)]`` in model order, or None when neither option asks for groups."""
    if params is None and not per_layer:
        return None
    if params is None:
        groups = [("all", list(names))]
    elif isinstance(params, str):
        groups = [(params, _matching(names, [params]))]
    elif isinstance(params, Mapping):
        groups = [(str(label), _matching(names, [p] if isinstance(p, str) else list(p))) for label, p in params.items()]
    else:
        groups = [(str(p), _matching(names, [p])) for p in params]
    if not groups:
        raise UserError("params selects no group", param="params")
    if not per_layer:
        return groups
    selected = {n for _, members in groups for n in members}
    layers: dict[str, list[str]] = {}
    for n in names:
        if n in selected:
            layers.setdefault(module_of(n), []).append(n)
    return list(layers.items())


def module_of(name: str) -> str:
    """The module a parameter belongs to: its name up to the last dot (the name itself at top level)."""
    return name.rpartition(".")[0] or name


def _matching(names: Sequence[str], patterns: list[str]) -> list[str]:
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise UserError(
                f"params pattern {pattern!r} matches no trainable parameter (they are named like {names[0]!r})",
                param="params",
            )
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
