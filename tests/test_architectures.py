"""mtl.architecture: the layouts of shared-bottom, MMoE and PLE, what each task reads, gates that
mix experts, and steps that move only what the stepping task reads."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_config
from modules import experts as experts_lib
from modules import inputs as inputs_lib
from modules import mtl
from modules.config import ConfigError, ExpertsConfig
from modules.training import MaskedTrainer, snapshot

TASKS = ("ctr", "cvr")
LEAN = {"dropout": 0.0, "embedding_l2": 0.0, "linear_term": False, "batch_size": 60}
EXPERTS = {"shared": 2, "per_task": 1, "levels": 2, "units": [8, 6], "tower_units": [4]}


def _names(layout):
    return [m.name for m in layout.mlps], [g.name for g in layout.gates]


def test_shared_bottom_and_lt4rec_are_one_mlp_every_task_reads():
    for architecture in ("lt4rec", "shared_bottom"):
        layout = experts_lib.layout(architecture, TASKS, 30, [16, 8], ExpertsConfig())
        assert _names(layout) == (["mlp"], [])
        assert layout.mlp("mlp").layers == ((30, 16), (16, 8)) and layout.head_width == 8
        assert all(experts_lib.reads(layout, t) == {"mlp"} for t in TASKS)


def test_mmoe_is_shared_experts_a_gate_and_a_tower_per_task():
    layout = experts_lib.layout("mmoe", TASKS, 30, [16], ExpertsConfig(**EXPERTS))
    mlps, gates = _names(layout)
    assert mlps == ["expert_0_shared_0", "expert_0_shared_1", "tower_ctr", "tower_cvr"]
    assert gates == ["gate_0_ctr", "gate_0_cvr"]        # one level, no task experts
    assert layout.mlp("expert_0_shared_1").layers == ((30, 8), (8, 6))
    assert layout.mlp("expert_0_shared_1").first == 2     # kernels in layout order
    assert layout.mlp("tower_cvr").layers == ((6, 4),) and layout.head_width == 4
    assert experts_lib.reads(layout, "ctr") == {
        "expert_0_shared_0", "expert_0_shared_1", "gate_0_ctr", "tower_ctr"}


def test_ple_task_paths_read_every_lower_level_expert_but_only_their_own_top():
    layout = experts_lib.layout("ple", TASKS, 30, [16], ExpertsConfig(**EXPERTS))
    mlps, gates = _names(layout)
    assert gates == ["gate_0_ctr", "gate_0_cvr", "gate_0_shared", "gate_1_ctr", "gate_1_cvr"]
    assert layout.gate("gate_0_shared").experts == (
        "expert_0_ctr_0", "expert_0_cvr_0", "expert_0_shared_0", "expert_0_shared_1")
    assert layout.gate("gate_1_cvr").experts == (
        "expert_1_cvr_0", "expert_1_shared_0", "expert_1_shared_1")
    assert layout.mlp("expert_1_shared_0").layers[0] == (6, 8)   # on the level below's output
    ctr = experts_lib.reads(layout, "ctr")
    # Level 0: every expert (the shared gate mixes them all), the task's gate and the shared one.
    assert {n for n in ctr if n.startswith(("expert_0", "gate_0"))} == {
        "expert_0_ctr_0", "expert_0_cvr_0", "expert_0_shared_0", "expert_0_shared_1",
        "gate_0_ctr", "gate_0_shared"}
    assert {n for n in ctr if n.startswith(("expert_1", "gate_1", "tower"))} == {
        "expert_1_ctr_0", "expert_1_shared_0", "expert_1_shared_1", "gate_1_ctr", "tower_ctr"}


def test_one_ple_level_is_cgc_and_task_names_may_hold_underscores():
    layout = experts_lib.layout("ple", ("watch_time", "ctr"), 10, [4],
                                ExpertsConfig(**{**EXPERTS, "levels": 1}))
    assert experts_lib.reads(layout, "watch_time") == {
        "expert_0_watch_time_0", "expert_0_shared_0", "expert_0_shared_1", "gate_0_watch_time",
        "tower_watch_time"}


@pytest.mark.parametrize("experts, field", [
    ({"levels": 0}, "mtl.experts.levels"), ({"units": []}, "mtl.experts.units"),
    ({"shared": 0}, "mtl.experts.shared"), ({"tower_units": [0]}, "mtl.experts.tower_units")])
def test_bad_expert_settings_are_refused_naming_the_field(experts, field):
    with pytest.raises(ConfigError, match=field):
        small_config(mtl={"architecture": "mmoe", "experts": {**EXPERTS, **experts}})


def test_an_unknown_architecture_and_the_old_masks_setting_are_refused():
    with pytest.raises(ConfigError, match="mtl.architecture.*must be one of"):
        small_config(mtl={"architecture": "dnn"})
    with pytest.raises(ConfigError, match="mtl.masks moved to mtl.architecture"):
        small_config(mtl={"masks": "ones"})
    assert small_config(mtl={"architecture": "ple", "experts": {"shared": 0}})   # task experts


def _network(inputs, architecture, **model):
    config = small_config(model={**LEAN, **model},
                          mtl={"architecture": architecture, "experts": EXPERTS})
    return config, inputs_lib.build_network(inputs, config, TASKS)


def test_a_gate_mixes_its_experts_by_a_softmax(toy_inputs):
    _, network = _network(toy_inputs, "mmoe")
    batch = next(iter(toy_inputs.validation.batches(32)))
    kernel, bias = network.gates["gate_0_ctr"]
    kernel.assign(tf.zeros_like(kernel))
    bias.assign([30.0, 0.0])                    # softmax ~ (1, 0): expert 0 alone
    only_first = network(batch, task="ctr").numpy()
    bias.assign([0.0, 30.0])
    only_second = network(batch, task="ctr").numpy()
    # The same logit as a network whose two experts are both the first one.
    first, second = (network.layout.mlp(f"expert_0_shared_{i}").first for i in (0, 1))
    for offset in range(2):
        network.kernels[second + offset].assign(network.kernels[first + offset])
        network.biases[second + offset].assign(network.biases[first + offset])
    np.testing.assert_allclose(network(batch, task="ctr").numpy(), only_first, rtol=1e-5, atol=1e-7)
    assert not np.allclose(only_first, only_second)
    bias.assign([0.0, 0.0])                     # equal weights of two equal experts: the same
    np.testing.assert_allclose(network(batch, task="ctr").numpy(), only_first, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe", "ple"])
def test_a_task_step_moves_what_it_reads_and_nothing_of_the_other_task(toy_inputs,
                                                                       architecture):
    config, network = _network(toy_inputs, architecture)
    masks = mtl.masks_for(config, network, {})
    for task in TASKS:
        assert [bool(m.all()) for m in masks[task]] == network.reads(task)
        assert all(m.all() or not m.any() for m in masks[task])
    trainer = MaskedTrainer(network, toy_inputs.strategy, config)
    for task in TASKS:
        trainer.set_masks(task, masks[task])
    trainer.reset_optimizers()
    index = {id(v): i for i, v in enumerate(network.variables)}

    def of(variables):
        return {index[id(v)] for v in variables}
    before = snapshot(network)
    trainer.train_steps(toy_inputs.train, lambda _: ["ctr"], 3, seed=1)
    moved = {i for i, (old, new) in enumerate(zip(before, snapshot(network)))
             if not np.array_equal(old, new)}
    assert moved and moved <= of(network.task_variables("ctr"))
    assert moved >= of(network.own_variables("ctr"))
    assert not moved & of(network.own_variables("cvr"))
    names = {network.variables[i].name for i in moved}
    if architecture == "shared_bottom":
        assert of(network.task_variables("ctr")) - of(network.own_variables("ctr")) == \
            of(network.task_variables("cvr")) - of(network.own_variables("cvr"))
    else:
        assert any(n.startswith("tower_ctr") for n in names)
        assert not any(n.startswith(("tower_cvr", "gate_0_cvr", "gate_1_cvr", "expert_1_cvr"))
                       for n in names)


@pytest.mark.parametrize("architecture", ["mmoe", "ple"])
def test_an_expert_network_trains_with_early_stopping_and_beats_chance(toy_inputs, architecture):
    config = small_config(model=LEAN, mtl={"architecture": architecture, "experts": EXPERTS,
                                           "stopping": {"max_epochs": 4, "patience": 2}})
    _, trainer, masks, fit = mtl.train(toy_inputs, config, {})
    assert fit.checks and set(fit.validation_auc) == set(TASKS)
    assert fit.validation_auc["ctr"] > 0.6
