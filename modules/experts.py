"""The layout of the network's MLPs for each `mtl.architecture`, and which parts a task reads.

- `lt4rec` and `shared_bottom`: one MLP (`model.hidden_units`) that every task reads (LT4REC
  through its ticket mask, shared-bottom through all of it), one head per task on top.
- `mmoe` (Ma et al., KDD 2018): `mtl.experts.shared` expert MLPs on the interaction layer, one
  softmax gate per task mixing them, one tower MLP per task, its head on top.
- `ple` (Tang et al., RecSys 2020): `mtl.experts.levels` extraction levels. Each level has
  `shared` experts and `per_task` experts of each task; a task's gate mixes its own and the
  shared experts, and below the last level a shared gate mixes every expert into the next
  level's shared input. One level is CGC; MMoE is one level without task experts.

A layout is a list of `Mlp`s (their kernels are the network's prunable weights, in this order)
and a list of `Gate`s. `trace` walks the same computation as the forward pass for one task and
returns what it reads, so masks and optimizers cover exactly what a task's loss reaches.
"""
import dataclasses
from typing import List, Tuple


@dataclasses.dataclass(frozen=True)
class Mlp:
    """A ReLU MLP: `layers` (fan_in, fan_out); its kernels start at `first` in the network's."""
    name: str
    layers: Tuple[Tuple[int, int], ...]
    first: int

    @property
    def width(self):
        return self.layers[-1][1]


@dataclasses.dataclass(frozen=True)
class Gate:
    """A softmax over `experts` (Mlp names) from an input `fan_in` wide."""
    name: str
    fan_in: int
    experts: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Layout:
    """The MLPs and gates of one architecture for a list of tasks."""
    architecture: str
    tasks: Tuple[str, ...]
    mlps: Tuple[Mlp, ...]
    gates: Tuple[Gate, ...]
    levels: int
    head_width: int

    def mlp(self, name):
        return next(m for m in self.mlps if m.name == name)

    def gate(self, name):
        return next(g for g in self.gates if g.name == name)

    @property
    def gated(self):
        return self.architecture in ("mmoe", "ple")


def layout(architecture, tasks, input_width, hidden_units, experts):
    """The `Layout` of `architecture` for `tasks` on an MLP input `input_width` wide;
    `experts`: the `mtl.experts` settings (read by mmoe and ple only)."""
    tasks = tuple(tasks)
    mlps, gates = [], []

    def add_mlp(name, fan_in, units):
        widths = [fan_in] + list(units)
        first = sum(len(m.layers) for m in mlps)
        mlps.append(Mlp(name, tuple(zip(widths[:-1], widths[1:])), first))
        return mlps[-1]

    if architecture not in ("mmoe", "ple"):
        mlp = add_mlp("mlp", input_width, hidden_units)
        return Layout(architecture, tasks, tuple(mlps), (), 0, mlp.width)
    levels, per_task = (1, 0) if architecture == "mmoe" else (experts.levels, experts.per_task)
    fan_in = input_width
    for level in range(levels):
        shared = [add_mlp(f"expert_{level}_shared_{i}", fan_in, experts.units).name
                  for i in range(experts.shared)]
        own = {task: [add_mlp(f"expert_{level}_{task}_{i}", fan_in, experts.units).name
                      for i in range(per_task)] for task in tasks}
        for task in tasks:
            gates.append(Gate(f"gate_{level}_{task}", fan_in, tuple(own[task] + shared)))
        if level < levels - 1:
            gates.append(Gate(f"gate_{level}_shared", fan_in,
                              tuple(e for t in tasks for e in own[t]) + tuple(shared)))
        fan_in = experts.units[-1]
    for task in tasks:
        add_mlp(f"tower_{task}", fan_in, experts.tower_units)
    head = experts.tower_units[-1] if experts.tower_units else fan_in
    return Layout(architecture, tasks, tuple(mlps), tuple(gates), levels, head)


def trace(layout, task, ops):
    """Run `task`'s path through `layout` with `ops`: `ops.input()` (the MLP input),
    `ops.mlp(mlp, x)` and `ops.gate(gate, x, {expert: output})`; returns the head's input.
    Each part is computed once (memoised), and only the parts `task` reads."""
    if not layout.gated:
        return ops.mlp(layout.mlp("mlp"), ops.input())
    memo = {}

    def once(key, fn):
        if key not in memo:
            memo[key] = fn()
        return memo[key]

    def level_input(owner, level):
        """Input of `owner`'s (a task or "shared") experts and gate at `level`."""
        if level == 0:
            return once("input", ops.input)
        return mixed(owner, level - 1)

    def expert(name, owner, level):
        return once(name, lambda: ops.mlp(layout.mlp(name), level_input(owner, level)))

    def mixed(owner, level):
        gate = layout.gate(f"gate_{level}_{owner}")

        def mix():
            outputs = {e: expert(e, _owner(e), level) for e in gate.experts}
            return ops.gate(gate, level_input(owner, level), outputs)
        return once(gate.name, mix)

    return ops.mlp(layout.mlp(f"tower_{task}"), mixed(task, layout.levels - 1))


def _owner(expert_name):
    """The task (or "shared") an expert belongs to: `expert_{level}_{owner}_{i}`."""
    return expert_name.split("_", 2)[2].rsplit("_", 1)[0]


class _Reads:
    """`trace` ops that record the names of the parts read."""

    def __init__(self):
        self.names: List[str] = []

    def input(self):
        return None

    def mlp(self, mlp, x):
        self.names.append(mlp.name)

    def gate(self, gate, x, outputs):
        self.names.append(gate.name)


def reads(layout, task):
    """The names of the MLPs and gates `task`'s forward pass reads."""
    ops = _Reads()
    trace(layout, task, ops)
    return set(ops.names)
