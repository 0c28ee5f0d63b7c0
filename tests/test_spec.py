"""The feature and task spec: validation naming the field, and a toy spec with numeric,
bucketised numeric, int id, string id and id_list features and its own tasks (a column label, a
rule label on rule rows with an mse target, a product) through preprocessing_fn, the network,
one training step and the metrics."""
import copy
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from modules import data, features, inputs, preprocessing
from modules.config import Config, ConfigError
from modules.training import MaskedTrainer

TOY_FEATURES = [
    {"name": "user", "kind": "id"},                                   # string ids
    {"name": "item", "kind": "id"},                                   # integer ids
    {"name": "seen_items", "kind": "id_list", "group": "item", "max_length": 3},
    {"name": "price", "kind": "numeric", "normalize": "log1p", "default": 1.0},
    {"name": "age", "kind": "numeric", "buckets": 4},
    {"name": "score", "kind": "numeric"},
]
TOY_TASKS = [
    {"name": "click", "label": "label", "loss": "bce"},
    {"name": "finish", "label": "cvrlabel >= 0.5", "rows": "label == 1 and cvrlabel > 0",
     "loss": "mse", "target": "cvrlabel"},
    {"name": "long", "label": "cvrlabel >= 0.3", "rows": "label", "loss": "focal",
     "focal_alpha": 0.5},
]
TOY = {
    "spec": {"features": TOY_FEATURES,
             "groups": {"user": {"embedding_dim": 2, "num_oov_buckets": 2},
                        "age": {"embedding_dim": 3}},
             "keys": ["request"], "reference_scores": [], "tasks": TOY_TASKS,
             "products": [{"name": "click_finish", "tasks": ["click", "finish"]}]},
    "data": {"split_key": "request"},
    "evaluation": {"slice_features": ["user"]},
    "model": {"embedding_dim": 4, "hidden_units": [8], "batch_size": 16, "seed": 3,
              "dropout": 0.0},
}
ROWS = 32


def toy_config(**spec_changes):
    values = copy.deepcopy(TOY)
    values["spec"].update(spec_changes)
    return Config.from_dict(values)


def raw_rows(count=ROWS):
    """Raw toy rows (dicts of value lists) with every kind of feature, labels and a key."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        label = int(rng.random() < 0.5)
        rows.append({
            "user": [b"u%d" % (i % 5)], "item": [int(i % 7) + 100],
            "seen_items": [int(v) + 100 for v in rng.integers(0, 9, i % 5)],
            "price": [] if i % 8 == 0 else [float(rng.gamma(2.0, 20.0))],
            "age": [int(18 + 2 * i)], "score": [] if i % 4 == 0 else [float(rng.normal(5, 2))],
            features.LABEL: [label], features.CVR_LABEL: [float(label * rng.random())],
            "request": [b"r%d" % i]})
    return rows


def raw_spec():
    """The toy rows' raw feature spec."""
    return {"user": tf.io.VarLenFeature(tf.string), "item": tf.io.VarLenFeature(tf.int64),
            "seen_items": tf.io.VarLenFeature(tf.int64), "price": tf.io.VarLenFeature(tf.float32),
            "age": tf.io.VarLenFeature(tf.int64), "score": tf.io.VarLenFeature(tf.float32),
            features.LABEL: tf.io.VarLenFeature(tf.int64),
            features.CVR_LABEL: tf.io.VarLenFeature(tf.float32),
            "request": tf.io.VarLenFeature(tf.string)}


@pytest.fixture(scope="module")
def toy_transform(tmp_path_factory):
    """(raw rows, transformed rows, TFTransformOutput) of the toy spec."""
    tmp = str(tmp_path_factory.mktemp("toy_transform"))
    raw = raw_rows()
    custom = {"config": toy_config().to_json(("spec", "data", "vocab"))}
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(raw_spec())
    with tft_beam.Context(temp_dir=os.path.join(tmp, "tft")):
        (transformed, _), transform_fn = (
            (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
                lambda batch: preprocessing.preprocessing_fn(batch, custom)))
        _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(tmp, "out"))
    return raw, transformed, tft.TFTransformOutput(os.path.join(tmp, "out"))


def test_the_toy_spec_transforms_every_kind(toy_transform):
    raw, out, tft_output = toy_transform
    item_vocab = tft_output.vocabulary_by_name("vocab_item")
    ids = {value.decode(): i for i, value in enumerate(item_vocab)}
    for row, t in zip(raw, out):
        assert t["item"] == ids[str(row["item"][0])]
        # the list shares the item vocabulary, keeps 3 ids, pads with -1
        expected = [ids.get(str(v), -2) for v in row["seen_items"][:3]]
        assert list(t["seen_items"]) == expected + [-1] * (3 - len(expected))
        assert t["user"] < len(tft_output.vocabulary_by_name("vocab_user"))
    price = np.log1p([row["price"][0] if row["price"] else 1.0 for row in raw])
    np.testing.assert_allclose([t["price"] for t in out], (price - price.mean()) / price.std(),
                               rtol=1e-4, atol=1e-4)
    score = np.array([row["score"][0] if row["score"] else 0.0 for row in raw])
    np.testing.assert_allclose([t["score"] for t in out], (score - score.mean()) / score.std(),
                               rtol=1e-4, atol=1e-4)
    buckets = [int(t["age"]) for t in out]          # ages increase with the row
    assert buckets == sorted(buckets) and set(buckets) == {0, 1, 2, 3}
    assert sorted(tft_output.transformed_feature_spec()) == sorted(
        ["user", "item", "seen_items", "price", "age", "score", "label", "cvrlabel",
         "finish_label", "finish_rows", "long_label"])


def test_the_toy_tasks_get_their_labels_and_rows_under_the_spec_names(toy_transform):
    raw, out, _ = toy_transform
    label = np.array([row["label"][0] for row in raw])
    rate = np.array([row["cvrlabel"][0] for row in raw], np.float32)
    np.testing.assert_array_equal([t["label"] for t in out], label)
    np.testing.assert_array_equal([t["cvrlabel"] for t in out], rate)
    np.testing.assert_array_equal([t["finish_label"] for t in out], rate >= 0.5)
    rows = (label == 1) & (rate > 0)
    np.testing.assert_array_equal([t["finish_rows"] for t in out], rows)
    np.testing.assert_array_equal([t["long_label"] for t in out], rate >= 0.3)
    assert 0 < rows.sum() < len(rows) and 0 < (rate[rows] >= 0.5).sum() < rows.sum()


def test_the_toy_spec_builds_the_network_and_trains_a_step(toy_transform, tmp_path):
    _, out, tft_output = toy_transform
    config = toy_config()
    sizes = inputs.vocab_sizes(tft_output, config)
    assert sizes["age"] == 4 and sizes["user"] == 5 + 2
    assert sizes["item"] == len(tft_output.vocabulary_by_name("vocab_item")) + 10
    network = inputs.network_for(sizes, config, config.spec.task_names())
    assert network.kernels[0].shape == (6 * 4 + 6 * 6, 8)
    assert sorted(network.projections) == ["age", "user"]
    assert network.projections["user"].shape == (2, 4)
    assert network.tables["age"].embeddings.shape == (4, 3)
    assert sorted(network.numeric_vectors) == ["price", "score"]
    assert sorted(network.numeric_linear["click"]) == ["price", "score"]

    arrays = {name: np.stack([np.asarray(t[name]) for t in out]) for name in out[0]}
    path = data.write_examples(arrays, str(tmp_path / "toy.gz"))
    examples = data.Examples([path], data.feature_spec_of(arrays), config.input)
    trainer = MaskedTrainer(network, tf.distribute.get_strategy(), config)
    for task in config.spec.task_names():
        trainer.set_masks(task, [np.ones(k.shape, bool) for k in network.kernels])
    trainer.reset_optimizers()
    before = {v.name: v.numpy().copy() for v in network.task_variables("click")}
    _, batch = next(trainer.batches(examples, seed=0))
    trainer.step(config.spec.task_names(), batch)
    moved = {v.name for v in network.task_variables("click")
             if not np.array_equal(before[v.name], v.numpy())}
    for variable in (list(network.numeric_vectors.values()) +
                     list(network.projections.values()) + network.kernels):
        assert variable.name in moved
    assert set(trainer.read_losses()) == {"click", "finish", "long"}
    # each output is evaluated on its rows: the product on the first task's (all) rows
    results = trainer.metrics(examples, config.spec.output_names())
    rows = np.array([t["finish_rows"] for t in out]).sum()
    clicked = sum(t["label"] for t in out)
    assert {name: r["rows"] for name, r in results.items()} == {
        "click": ROWS, "finish": rows, "long": clicked, "click_finish": ROWS}
    assert results["click_finish"]["positives"] == sum(t["finish_label"] for t in out)


def _refused(config_values, match):
    with pytest.raises(ConfigError, match=match):
        Config.from_dict(config_values)


@pytest.mark.parametrize("change, message", [
    ({"features": TOY_FEATURES + [{"name": "city", "kind": "category"}]},
     r"spec.features\[6\] \('city'\).kind = 'category' is not a kind"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kind": "id", "group": "price"}]},
     r"spec.features\[6\] \('brand'\).group = 'price' mixes kinds: 'price' is a numeric"),
    ({"features": TOY_FEATURES + [{"name": "user", "kind": "id_list"}]},
     r"spec.features\[6\].name = 'user' duplicates spec.features\[0\].name"),
    ({"keys": ["request", "user"]}, r"spec.keys = 'user' duplicates spec.features\[0\].name"),
    ({"groups": {"price": {"top_k": 10}}},
     r"spec.groups.price = \['top_k'\] are vocabulary settings, but a numeric feature has no "
     r"vocabulary"),
    ({"groups": {"score": {"embedding_dim": 8}}},
     r"spec.groups.score.embedding_dim = 8 applies to a numeric feature only with `buckets`"),
    ({"groups": {"brand": {"top_k": 10}}}, r"spec.groups = 'brand' is not a group"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kind": "numeric", "group": "item"}]},
     r"spec.features\[6\] \('brand'\).group = 'item' cannot be set on a numeric feature"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kind": "id", "normalize": "log1p"}]},
     r"spec.features\[6\] \('brand'\).normalize = 'log1p' applies to numeric features only"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kind": "id", "max_length": 3}]},
     r"spec.features\[6\] \('brand'\).max_length = 3 applies to id_list features only"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kind": "numeric", "normalize": "log"}]},
     r"spec.features\[6\] \('brand'\).normalize = 'log' must be one of"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kind": "numeric", "buckets": 1}]},
     r"spec.features\[6\] \('brand'\).buckets = 1 must be an integer >= 2"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kind": "id", "group": "seen_items"}]},
     r"spec.features\[6\] \('brand'\).group = 'seen_items' names feature 'seen_items', which is "
     r"itself in group 'item'"),
    ({"features": TOY_FEATURES + [{"name": features.LABEL, "kind": "id"}]},
     r"spec.tasks\[0\] \('click'\) = 'label' reads 'label', which is a model input"),
    ({"features": TOY_FEATURES + [{"name": "finish_rows", "kind": "numeric"}]},
     r"spec.features\[6\].name = 'finish_rows' is a transformed label name"),
    ({"features": TOY_FEATURES + [{"name": "brand", "kinds": "id"}]},
     r"unknown key\(s\) \['kinds'\] in spec.features\[6\]"),
    ({"features": []}, r"spec.features = \[\] must list the model inputs"),
    ({"reference_scores": [{"name": "old_model", "column": "old", "task": "like"}]},
     r"spec.reference_scores\[0\].task = 'like' is not a task"),
    # tasks and products
    ({"tasks": [TOY_TASKS[0], {**TOY_TASKS[1], "loss": "hinge"}]},
     r"spec.tasks\[1\] \('finish'\).loss = 'hinge' is not a loss; losses: \['focal', 'bce', "
     r"'mse'\]"),
    ({"tasks": [TOY_TASKS[0], {**TOY_TASKS[1], "name": "click"}]},
     r"spec.tasks\[1\].name = 'click' duplicates spec.tasks\[0\]: task names must be unique"),
    ({"products": [{"name": "click_like", "tasks": ["click", "like"]}]},
     r"spec.products\[0\] \('click_like'\).tasks = \['click', 'like'\] names unknown task\(s\) "
     r"\['like'\]"),
    ({"products": [{"name": "click", "tasks": ["click", "finish"]}]},
     r"spec.products\[0\].name = 'click' duplicates spec.tasks\[0\]"),
    ({"products": [{"name": "twice", "tasks": ["click", "click"]}]},
     r"must list two or more different tasks"),
    ({"tasks": []}, r"spec.tasks = \[\] must list at least one task"),
    ({"tasks": [TOY_TASKS[0], {**TOY_TASKS[1], "label": "cvrlabel >= 0.5 and"}]},
     r"spec.tasks\[1\] \('finish'\).label: cannot parse rule 'cvrlabel >= 0.5 and' at "
     r"position 19"),
    ({"tasks": [TOY_TASKS[0], {**TOY_TASKS[1], "rows": "len(label) > 0"}]},
     r"spec.tasks\[1\] \('finish'\).rows: .*'len' is a column: a rule calls no functions"),
    ({"tasks": [TOY_TASKS[0], {**TOY_TASKS[1], "label": "price > 10"}]},
     r"spec.tasks\[1\] \('finish'\) = 'price' reads 'price', which is a model input"),
    ({"tasks": [{**TOY_TASKS[0], "focal_alpha": 0.5}, TOY_TASKS[1]]},
     r"spec.tasks\[0\] \('click'\).focal_alpha = 0.5 applies to loss: focal only"),
    ({"tasks": [{**TOY_TASKS[0], "loss": "focal", "focal_alpha": 1.5}, TOY_TASKS[1]]},
     r"spec.tasks\[0\] \('click'\).focal_alpha = 1.5 must be in \(0, 1\)"),
    ({"tasks": [{**TOY_TASKS[0], "target": "cvrlabel"}, TOY_TASKS[1]]},
     r"spec.tasks\[0\] \('click'\).target = 'cvrlabel' applies to loss: mse only"),
    ({"tasks": [{**TOY_TASKS[0], "label_key": "clicked"}, TOY_TASKS[1]]},
     r"spec.tasks\[0\] \('click'\).label_key = 'clicked' applies to a rule label only"),
    ({"tasks": [TOY_TASKS[0], {**TOY_TASKS[1], "label_key": "cvrlabel"}]},
     r"spec.tasks\[1\].label_key = 'cvrlabel' names a transformed column that is also a label "
     r"column"),
])
def test_a_bad_spec_is_refused_naming_the_field(change, message):
    values = copy.deepcopy(TOY)
    values["spec"].update(change)
    _refused(values, message)


def test_settings_naming_columns_outside_the_spec_are_refused():
    values = copy.deepcopy(TOY)
    values["data"]["split_key"] = "seqnum"
    _refused(values, r"data.split_key = 'seqnum' must be empty \(hash the whole record\) or a "
                     r"feature or key column of the spec")
    values = copy.deepcopy(TOY)
    values["evaluation"]["slice_features"] = ["FEA_ALGID"]
    _refused(values, r"evaluation.slice_features = 'FEA_ALGID' is not a feature or key column")


def test_a_spec_column_missing_from_the_schema_is_refused_before_the_pipeline_is_built(
        tmp_path):
    from pipeline.pipeline import create_pipeline
    values = {"spec": {"features": [{"name": "FEA_UID", "kind": "id"},
                                    {"name": "FEA_UCAT", "kind": "numeric"},
                                    {"name": "watch_time", "kind": "numeric"}],
                       "tasks": [{"name": "ctr", "label": "label", "loss": "bce"}]}}
    with pytest.raises(ConfigError) as error:
        create_pipeline(str(tmp_path / "root"), str(tmp_path), str(tmp_path / "serving"),
                        Config.from_dict(values))
    message = str(error.value)
    assert "spec.features[1] ('FEA_UCAT', numeric): the schema types it BYTES" in message
    assert "spec.features[2] ('watch_time', numeric): missing from the schema" in message
    assert "schema/schema.pbtxt" in message and "FEA_UID" not in message


def test_a_task_rule_naming_a_column_the_schema_lacks_is_refused_before_the_pipeline_is_built(
        tmp_path):
    from pipeline.pipeline import create_pipeline
    tasks = [{"name": "ctr", "label": "label", "loss": "bce"},
             {"name": "watch", "label": "watched > 30 and label == 1", "rows": "label",
              "loss": "bce"}]
    with pytest.raises(ConfigError) as error:
        create_pipeline(str(tmp_path / "root"), str(tmp_path), str(tmp_path / "serving"),
                        Config.from_dict({"spec": {"tasks": tasks, "products": []}}))
    assert "spec.tasks[1] ('watch') reads 'watched': missing from the schema" in str(error.value)
    assert "'label'" not in str(error.value)


def test_a_spec_listing_features_stands_alone():
    """Other data: no LT4REC keys, scores, tasks, products, split key or slices come along."""
    with pytest.raises(ConfigError, match=r"spec.tasks = \[\] must list at least one task"):
        Config.from_dict({"spec": {"features": TOY_FEATURES}})
    own = Config.from_dict({"spec": {"features": TOY_FEATURES, "tasks": TOY_TASKS[:1]}})
    assert (own.spec.keys, own.spec.reference_scores, own.spec.products) == ([], [], [])
    assert own.data.split_key == "" and own.evaluation.slice_features == []
    assert Config.from_json(own.to_json()) == own


def test_the_default_spec_is_the_lt4rec_data_file():
    spec = Config().spec
    assert spec.fields()[:2] == ["FEA_SVID", "FEA_SCP"] and len(spec.fields()) == 20
    groups = spec.vocabulary_groups()       # shared groups first, the group's namesake first
    assert list(groups)[:5] == ["FEA_VID", "FEA_CP", "FEA_ICAT2", "FEA_IXFTAG", "FEA_AGE"]
    assert groups["FEA_IXFTAG"] == ("FEA_IXFTAG", "FEA_STAG", "FEA_IKEYWORD")
    assert [r.name for r in spec.reference_scores] == ["pctr_reference"]
    # the tasks keep today's transformed names: they are baked into pushed models, TFMA's label
    # keys and the previous model the no-regression gate compares with
    assert spec.output_names() == ["ctr", "cvr", "ctcvr"]
    assert [spec.eval_columns(name) for name in spec.output_names()] == [
        ("label", None), ("conversion", "label"), ("conversion", None)]
    assert spec.transformed_labels() == ["label", "cvrlabel", "conversion"]
    assert spec.rule_columns() == {"conversion": "label == 1 and cvrlabel >= 0.8"}
    assert [(t.loss, t.focal) for t in spec.tasks] == [("focal", (0.75, 2.0)), ("bce", (0.75, 2.0))]
    assert Config().data.split_key == "seqnum"
    # a partial spec overlays it: table settings without repeating the features
    tuned = Config.from_dict({"spec": {"groups": {"FEA_UID": {"top_k": 5}}}})
    assert tuned.spec.fields() == spec.fields()
    assert tuned.spec.vocab_settings("FEA_UID", tuned.vocab) == (5, 1, 10)
    assert tuned.spec.vocab_settings("FEA_VID", tuned.vocab) == (None, 1, 10)


def test_lt4rec_run_refuses_a_spec_its_schema_lacks_before_writing_anything(tmp_path, capsys):
    from pipeline import cli
    config = tmp_path / "config.yaml"
    config.write_text("spec:\n  features: [{name: FEA_UID, kind: id}, {name: watch_time, "
                      "kind: numeric}]\n  tasks: [{name: ctr, label: label, loss: bce}]\n")
    root = tmp_path / "root"
    code = cli.main(["run", "--spec", str(config), "--root", str(root)])
    assert code == 2 and not root.exists()
    assert ("spec.features[1] ('watch_time', numeric): missing from the schema"
            in capsys.readouterr().err)
    assert cli.main(["run", "--schema", str(tmp_path / "none.pbtxt"),
                     "--root", str(root)]) == 2 and not root.exists()
    assert "--schema" in capsys.readouterr().err
