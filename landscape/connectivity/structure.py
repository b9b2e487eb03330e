"""The permutation structure of an arbitrary network, derived from its ``torch.fx`` graph.

:func:`derive_groups` traces the model, propagates an example input through the graph for the
shapes, and follows every hidden-unit axis from the layer that creates it to the layers that read it,
as Git Re-Basin's hand-written permutation specifications do (Ainsworth et al. 2023):

* a ``Conv1d/2d/3d`` or ``Linear`` output axis starts a group (weight and bias axis 0); a conv or linear
  layer reading a group adds its weight's axis 1 (``block`` inputs per unit after a flatten);
* BatchNorm adds its weight, bias and running statistics; elementwise activations, dropout, identity
  and pooling pass units through; ``flatten``/``view``/``reshape``/``squeeze`` keep them when they stay
  contiguous runs (``block`` = the number of elements per unit, e.g. the spatial size); ``mean``/
  ``sum``/``amax`` over other dimensions keep them;
* ``+``, ``-``, ``*`` and ``/`` of two grouped tensors (residual additions, squeeze-excitation scales)
  tie their groups into one (union–find), named ``stream:<first module>``;
* a depthwise convolution passes its input group through; its weight axis 0 and bias join it;
* groups that reach the network's output are dropped (the output and input axes stay in place).

Anything else that touches a grouped tensor (``torch.cat``, attention, LayerNorm, embeddings, a mean
over the unit axis, grouped convolutions, modules called twice, ...) raises :class:`UserError` with one
line naming the operation and the node. Operations on tensors that carry no group are fine.

A group's ``activations`` are the BatchNorm after each of its conv/linear layers (else the layer);
for a merged group, the modules whose output is the stream: e.g. the stem's BatchNorm and the blocks.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from training.errors import UserError
from training.models.permutations import Entry, PermutationGroup, check_groups

PREFIX = "cannot derive the permutation structure"

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ELEMENTWISE_MODULES = (
    *(nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Hardtanh),
    *(nn.LeakyReLU, nn.ELU, nn.Mish, nn.Softplus, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity),
)
_POOL_MODULES = (
    *(nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d),
    *(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d),
)
_LEAVES = (*_CONVS, nn.Linear, _BatchNorm, *_ELEMENTWISE_MODULES, *_POOL_MODULES, nn.Flatten)

_ELEMENTWISE = {"relu", "relu_", "relu6", "gelu", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh", "hardtanh"}
_ELEMENTWISE |= {"leaky_relu", "elu", "mish", "softplus", "dropout", "dropout1d", "dropout2d"}
_ELEMENTWISE_METHODS = _ELEMENTWISE | {"contiguous", "clone", "detach"}
_POOLS = {"max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"}
_POOLS |= {"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d"}
_RESHAPES = {"flatten", "view", "reshape", "squeeze", "unsqueeze"}
_REDUCTIONS = {"mean", "sum", "amax", "amin"}
_MERGES = {"add", "add_", "iadd", "sub", "sub_", "isub", "mul", "mul_", "imul", "truediv", "div", "div_", "itruediv"}
_INFO = {"size", "dim", "shape", "ndim", "dtype", "device"}  # methods and attributes that carry no units


def _functions(names: set[str]) -> set[object]:
    """The torch, functional and operator functions called ``names`` (fx records them as targets)."""
    return {getattr(mod, n) for mod in (torch, F, operator) for n in names if hasattr(mod, n)}


_KINDS = {"elementwise": _ELEMENTWISE, "pool": _POOLS, "reshape": _RESHAPES, "reduce": _REDUCTIONS, "merge": _MERGES}
_FUNCTIONS = {kind: _functions(names) for kind, names in _KINDS.items()}
_METHODS = {"elementwise": _ELEMENTWISE_METHODS, "reshape": _RESHAPES, "reduce": _REDUCTIONS, "merge": _MERGES}


class _InputProxy(fx.Proxy):
    """A traced input whose number of dimensions is known (models often branch on ``x.dim()``)."""

    def __init__(self, node: fx.Node, tracer: fx.Tracer, ndim: int):
        super().__init__(node, tracer)
        self._ndim = ndim

    def dim(self) -> int:
        return self._ndim

    @property
    def ndim(self) -> int:
        return self._ndim


class _Tracer(fx.Tracer):
    """fx's tracer, with the layers this module knows (subclasses included) kept as ``call_module``."""

    def __init__(self, ndims: list[int]):
        super().__init__()
        self.ndims = ndims  # of the inputs, in order

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        if node.op == "placeholder" and self.ndims:
            return _InputProxy(node, self, self.ndims.pop(0))
        return super().proxy(node)


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _refuse(what: str, node: fx.Node) -> UserError:
    return UserError(f"{PREFIX}: unsupported operation {what} at node '{node.name}'")


@dataclass(frozen=True)
class _Tag:
    """The permuted axis of a tensor: ``group``'s units along ``dim``, ``block`` elements each."""

    group: int
    dim: int
    block: int = 1


@dataclass
class _Group:
    start: str
    size: int
    entries: list[Entry]
    units: list[fx.Node] = field(default_factory=list)  # the conv/linear layers that output its units
    merged: bool = False
    dropped: bool = False


def _shape(node: object) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


def _reshaped(tag: _Tag, src: tuple[int, ...], dst: tuple[int, ...]) -> _Tag | None:
    """``tag`` after a reshape from ``src`` to ``dst``, or ``None`` if its units stop being contiguous runs."""
    before, length = math.prod(src[: tag.dim]), src[tag.dim]
    for k in range(len(dst)):
        if math.prod(dst[:k]) != before:
            continue
        run = 1
        for size in src[tag.dim :]:
            run *= size
            if run == dst[k]:
                return _Tag(tag.group, k, tag.block * run // length)
            if run > dst[k]:
                break
    return None


class _Derivation:
    def __init__(self, gm: fx.GraphModule):
        self.modules = dict(gm.named_modules())
        self.nodes = list(gm.graph.nodes)
        self.tags: dict[fx.Node, _Tag | None] = {}
        self.groups: list[_Group] = []
        self.parent: list[int] = []
        self.passthrough: set[fx.Node] = set()  # elementwise and pooling nodes
        self.merges: set[fx.Node] = set()
        calls = [n.target for n in self.nodes if n.op == "call_module"]
        self.calls = {t: calls.count(t) for t in calls}

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = g = self.parent[self.parent[g]]
        return g

    def group(self, tag: _Tag) -> _Group:
        return self.groups[self.find(tag.group)]

    def new_group(self, node: fx.Node, size: int, dim: int) -> _Tag:
        entries = [(f"{node.target}.weight", 0, 1)]
        if getattr(self.modules[node.target], "bias", None) is not None:
            entries.append((f"{node.target}.bias", 0, 1))
        self.parent.append(len(self.groups))
        self.groups.append(_Group(str(node.target), size, entries, [node]))
        return _Tag(len(self.groups) - 1, dim)

    def union(self, a: _Tag, b: _Tag) -> int:
        ra, rb = sorted((self.find(a.group), self.find(b.group)))
        ga, gb = self.groups[ra], self.groups[rb]
        ga.merged = True
        if ra != rb:
            ga.entries += gb.entries
            ga.units += gb.units
            ga.dropped |= gb.dropped
            self.parent[rb] = ra
        return ra

    def tag(self, arg: object) -> _Tag | None:
        return self.tags.get(arg) if isinstance(arg, fx.Node) else None

    def run(self) -> None:
        for node in self.nodes:
            if node.op == "output":  # the output's axes stay in place
                for tag in filter(None, map(self.tags.get, node.all_input_nodes)):
                    self.group(tag).dropped = True
            elif node.op == "call_module":
                self.tags[node] = self.module(node, self.modules[node.target])
            elif node.op in ("call_function", "call_method"):
                self.tags[node] = self.function(node)
            else:  # placeholder, get_attr: nothing permuted
                self.tags[node] = None

    def module(self, node: fx.Node, m: nn.Module) -> _Tag | None:
        x = node.args[0] if node.args else None
        tag, shape = self.tag(x), _shape(x)
        if isinstance(m, (*_CONVS, nn.Linear, _BatchNorm)) and self.calls[node.target] > 1:
            raise UserError(f"{PREFIX}: module '{node.target}' is called more than once (shared weights)")
        if any(self.tags[a] is not None for a in node.all_input_nodes if a is not x):
            raise _refuse(type(m).__name__, node)
        if isinstance(m, _CONVS):
            if m.groups > 1 and not m.groups == m.in_channels == m.out_channels:
                raise _refuse(f"grouped convolution (groups={m.groups})", node)
            if tag is not None and (tag.dim != 1 or tag.block != 1):
                raise _refuse(f"{type(m).__name__} on a reshaped tensor", node)
            if m.groups > 1:  # depthwise: unit i of the output is unit i of the input
                if tag is not None:
                    g = self.group(tag)
                    g.entries += [(f"{node.target}.weight", 0, 1)]
                    g.entries += [(f"{node.target}.bias", 0, 1)] if m.bias is not None else []
                    g.units.append(node)
                return tag
            if tag is not None:
                self.group(tag).entries.append((f"{node.target}.weight", 1, 1))
            return self.new_group(node, m.out_channels, 1)
        if isinstance(m, nn.Linear):
            if tag is not None:
                if tag.dim != len(shape) - 1:
                    raise _refuse("Linear over a dimension other than the units'", node)
                self.group(tag).entries.append((f"{node.target}.weight", 1, tag.block))
            return self.new_group(node, m.out_features, len(_shape(node)) - 1)
        if tag is None:
            return None
        if isinstance(m, _BatchNorm):
            if tag.dim != 1 or tag.block != 1:
                raise _refuse(f"{type(m).__name__} on a reshaped tensor", node)
            self.group(tag).entries += [(f"{node.target}.{k}", 0, 1) for k, v in m.state_dict().items() if v.dim() == 1]
            return tag
        if isinstance(m, _ELEMENTWISE_MODULES):
            self.passthrough.add(node)
            return tag
        if isinstance(m, _POOL_MODULES):
            return self.pool(node, tag, shape, type(m).__name__)
        if isinstance(m, nn.Flatten):
            return self.reshape(node, tag, shape, "Flatten")
        raise _refuse(type(m).__name__, node)

    def function(self, node: fx.Node) -> _Tag | None:
        tags = [self.tags[n] for n in node.all_input_nodes if self.tags[n] is not None]
        if not tags:
            return None
        if node.op == "call_method":
            name = str(node.target)
            kind = next((k for k, names in _METHODS.items() if name in names), None)
            if name in _INFO:
                return None
        else:
            name = getattr(node.target, "__name__", str(node.target))
            kind = next((k for k, fns in _FUNCTIONS.items() if node.target in fns), None)
            if node.target is getattr and node.args[1] in _INFO:
                return None
        x = node.args[0] if node.args else None
        tag, shape = self.tag(x), _shape(x)
        if kind == "merge":
            return self.merge(node, name)
        if tag is None or len(tags) > 1 or kind is None:
            raise _refuse(name, node)
        if kind == "elementwise":
            self.passthrough.add(node)
            return tag
        if kind == "pool":
            return self.pool(node, tag, shape, name)
        if kind == "reshape":
            return self.reshape(node, tag, shape, name)
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
        dims = {d % len(shape) for d in ([dims] if isinstance(dims, int) else dims or ())}
        if not dims or tag.dim in dims:
            raise _refuse(f"{name} over the units' dimension", node)
        return _Tag(tag.group, tag.dim if keep else tag.dim - sum(d < tag.dim for d in dims), tag.block)

    def pool(self, node: fx.Node, tag: _Tag, shape: tuple[int, ...], name: str) -> _Tag:
        if tag.dim != 1 or tag.block != 1 or len(shape) < 3:
            raise _refuse(f"{name} over the units' dimension", node)
        self.passthrough.add(node)
        return tag

    def reshape(self, node: fx.Node, tag: _Tag, shape: tuple[int, ...], name: str) -> _Tag:
        out = _reshaped(tag, shape, _shape(node))
        if out is None:
            raise _refuse(f"{name} that splits or interleaves the units", node)
        return out

    def merge(self, node: fx.Node, name: str) -> _Tag:
        """An elementwise binary operation: two grouped operands are tied; a grouped and an ungrouped one
        are fine if the ungrouped one broadcasts along the units' dimension."""
        operands = [*node.args[:2], *node.kwargs.values()][:2]
        out = len(_shape(node))
        tagged = [(self.tag(a), _shape(a)) for a in operands if self.tag(a) is not None]
        tag, from_end = tagged[0][0], len(tagged[0][1]) - tagged[0][0].dim
        if len(tagged) == 2:
            other, other_shape = tagged[1]
            if len(other_shape) - other.dim != from_end or other.block != tag.block:
                raise _refuse(f"{name} of tensors with different unit layouts", node)
            self.merges.add(node)
            return _Tag(self.union(tag, other), out - from_end, tag.block)
        for a in operands:
            s = _shape(a) if self.tag(a) is None else None
            if s is not None and len(s) >= from_end and s[len(s) - from_end] != 1:
                raise _refuse(f"{name} of permuted units with an unpermuted tensor", node)
        return _Tag(tag.group, out - from_end, tag.block)

    def stream(self) -> set[fx.Node]:
        """Nodes on a merged group's stream: merges, tensors read twice (a skip connection's source), and
        the elementwise or pooling ops leading into or out of them."""
        merged = {n for n, t in self.tags.items() if t is not None and self.group(t).merged}
        on = set()
        for n in self.nodes:
            forward = n in self.passthrough and set(n.all_input_nodes) & on
            if n in merged and (n in self.merges or len(n.users) > 1 or forward):
                on.add(n)
        for n in reversed(self.nodes):
            if n in merged and len(n.users) == 1 and next(iter(n.users)) in on & self.passthrough:
                on.add(n)
        return on

    def module_outputs(self) -> dict[fx.Node, str]:
        """``{node: module}`` for the modules called once whose output is that node (the innermost module
        where several return it); elementwise and pooling layers are skipped."""
        calls: dict[str, tuple[str, set[fx.Node]]] = {}
        for n in self.nodes:
            for key, (name, _) in (n.meta.get("nn_module_stack") or {}).items():
                calls.setdefault(key, (name, set()))[1].add(n)
        names = [name for name, _ in calls.values()]
        out: dict[fx.Node, str] = {}
        for name, inside in calls.values():
            ends = [n for n in inside if any(u not in inside for u in n.users)]
            skip = isinstance(self.modules.get(name), (*_ELEMENTWISE_MODULES, *_POOL_MODULES))
            if names.count(name) > 1 or len(ends) != 1 or skip:
                continue
            if name.count(".") >= out.get(ends[0], "").count("."):
                out[ends[0]] = name
        return out

    def activations(self, g: _Group, stream: set[fx.Node], outputs: dict[fx.Node, str]) -> tuple[str, ...]:
        def carries(n: fx.Node) -> bool:
            t = self.tags.get(n)
            return t is not None and t.dim == 1 and t.block == 1 and self.group(t) is g

        if g.merged:
            names = [outputs[n] for n in self.nodes if n in stream and n in outputs and carries(n)]
            if names:
                return tuple(names)
        users = [list(n.users) for n in g.units]  # a layer's BatchNorm if its only reader is one, else the layer
        bns = [u[0] if len(u) == 1 and isinstance(self.modules.get(u[0].target), _BatchNorm) else None for u in users]
        return tuple(str((bn or n).target) for n, bn in zip(g.units, bns, strict=True) if carries(n))

    def result(self) -> list[PermutationGroup]:
        stream, outputs = self.stream(), self.module_outputs()
        out = []
        for i, g in enumerate(self.groups):
            if self.find(i) == i and not g.dropped:
                name = f"stream:{g.start}" if g.merged else g.start
                out.append(PermutationGroup(name, g.size, tuple(g.entries), self.activations(g, stream, outputs)))
        return out


def derive_groups(model: nn.Module, example_input: torch.Tensor | tuple[torch.Tensor, ...]) -> list[PermutationGroup]:
    """The permutation groups of ``model`` (see the module docstring), in forward order, checked with
    :func:`training.models.permutations.check_groups`. ``example_input`` (a batch, or a tuple of the
    forward's arguments) is run once in eval mode for the shapes; the model's modes are restored."""
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        tracer = _Tracer([x.dim() for x in inputs])
        try:
            graph = tracer.trace(model)
        except Exception as e:
            raise UserError(f"{PREFIX}: torch.fx cannot trace the model: {_first_line(e)}") from e
        gm = fx.GraphModule(tracer.root, graph)
        try:
            with torch.no_grad():
                ShapeProp(gm).propagate(*inputs)
        except Exception as e:
            raise UserError(f"{PREFIX}: the model does not run on the example input: {_first_line(e)}") from e
    finally:
        for m, training in modes.items():
            m.training = training
    derivation = _Derivation(gm)
    derivation.run()
    groups = derivation.result()
    check_groups(model, groups)
    return groups
