"""Daily data in the spans layout through the pipeline: the newest span by default, the window of
spans before it, a given span, a span that is not there refused before anything runs, and the
next day warm-started from the day before's pushed model, reusing its masks."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from conftest import tiny_pipeline_config
from pipeline import cli, local_runner, summary, synthetic_data

pytestmark = pytest.mark.e2e

ROWS = 500          # per span


def _records(examples, split):
    files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _all_records(examples):
    return sum(_records(examples, split) for split in ("train", "validation", "eval"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("spans") / "data"
    synthetic_data.write_spans(str(out), 3, ROWS, seed=5)
    return out


def test_a_run_takes_the_newest_span_and_the_window_before_it(data, tmp_path):
    config = tiny_pipeline_config(data={"window_spans": 2})
    outputs = local_runner.run(str(data), str(tmp_path), config)
    examples = outputs["ImportExampleGen"]["examples"][0]
    assert examples.custom_properties["span"].int_value == 3
    assert _all_records(examples) == 2 * ROWS                  # spans 2 and 3
    layout = local_runner.RunLayout(str(tmp_path))
    result = summary.build(outputs, layout, config)
    with open(layout.summary_path, encoding="utf-8") as f:
        assert json.load(f)["span"] == result["span"] == 3
    assert result["blessed"] is True and result["pushed_model"]
    assert summary.render(result).startswith("lt4rec run finished (span 3, ")


def test_a_given_span_is_read_alone(data, tmp_path):
    outputs = local_runner.run(str(data), str(tmp_path), tiny_pipeline_config(), span=1,
                               until="ImportExampleGen")
    examples = outputs["ImportExampleGen"]["examples"][0]
    assert examples.custom_properties["span"].int_value == 1
    assert _all_records(examples) == ROWS


def test_a_missing_span_is_refused_naming_the_spans(data, tmp_path, capsys):
    assert cli.main(["run", "--data", str(data), "--root", str(tmp_path), "--span", "9"]) == 2
    err = capsys.readouterr().err
    assert "has no span-9 directory (spans: [1, 2, 3])" in err
    assert not os.path.exists(tmp_path / "metadata.sqlite")       # nothing ran


@pytest.fixture(scope="module")
def two_days(data, tmp_path_factory):
    """Span 1 run cold (nothing pushed yet), then span 2 warm-started from span 1's push and
    through its masks: what the defaults (`auto`) do in the spans layout. The guard only
    reports, so that no task of version 1 is served from its ticket (which would make span 2
    search again: `test_a_model_serving_a_task_from_its_ticket_has_its_masks_searched_again`)."""
    root = tmp_path_factory.mktemp("two_days")
    config = tiny_pipeline_config(mtl={"negative_transfer": "report"})
    assert config.mtl.warm_start == config.ticket.reuse == "auto"
    layout = local_runner.RunLayout(str(root))
    first = summary.build(local_runner.run(str(data), str(root), config, span=1), layout, config)
    outputs = local_runner.run(str(data), str(root), config, span=2)
    return {"config": config, "first": first, "outputs": outputs,
            "second": summary.build(outputs, layout, config)}


def test_span_2_warm_starts_from_span_1s_pushed_model(two_days):
    first, second = two_days["first"], two_days["second"]
    assert first["span"] == 1 and first["warm_started_from"] is None and first["pushed_model"]
    assert second["span"] == 2 and second["warm_started_from"] == first["pushed_model"]
    assert second["pushed_model"] != first["pushed_model"]


def test_span_2_reuses_span_1s_masks_and_trains_no_ticket(two_days):
    from modules import masks as masks_lib
    from modules import ticket_search
    first, second = two_days["first"], two_days["second"]
    assert first["masks_reused"] is False and second["masks_reused"] is True
    assert first["masks_reuse"]["reason"] == "no model is pushed yet"
    v1_masks = os.path.join(first["pushed_model"], "assets.extra")
    assert second["masks_reuse"]["from"] == v1_masks
    assert second["masks_reuse"]["searched_span"] == 1
    searched = masks_lib.load(first["ticket_search"])
    reused = masks_lib.load(second["ticket_search"])
    for directory in (v1_masks, os.path.join(second["pushed_model"], "assets.extra")):
        published = masks_lib.load(directory)
        assert sorted(published) == sorted(searched) == sorted(reused) == ["ctr", "cvr"]
        for task in searched:
            assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in
                       zip(searched[task], published[task], reused[task]))
    # Nothing trained: no rounds, no ticket weights, no TensorBoard logs; θ0 is there.
    with open(os.path.join(second["ticket_search"], ticket_search.REPORT_FILE)) as f:
        report = json.load(f)
    assert all(record["rounds"] == [] for record in report["tasks"].values())
    assert ticket_search.trained_ticket_prefixes(second["ticket_search"], ["ctr", "cvr"]) == {}
    assert tf.io.gfile.exists(ticket_search.theta0_prefix(second["ticket_search"]) + ".index")
    run = two_days["outputs"]["TicketSearch"]["model_run"][0].uri
    assert not tf.io.gfile.exists(run) or tf.io.gfile.listdir(run) == []
    # The provenance travels: version 2 says its masks were searched on span 1, by span 1's run.
    origin = masks_lib.load_provenance(os.path.join(second["pushed_model"], "assets.extra"))
    assert origin["searched_span"] == 1 and origin["searched_in"] == first["ticket_search"]
    assert origin["served_by_ticket"] == []
    text = summary.render(second)
    assert f"tickets: reused from {v1_masks} (searched on span 1)" in text
    assert "tickets: searched (no model is pushed yet)" in summary.render(first)


def test_auto_goes_on_from_the_last_push_in_the_spans_layout_only(data, tmp_path):
    from pipeline.pipeline import create_components
    flat = tmp_path / "flat"
    synthetic_data.write_dataset(str(flat), rows=50, seed=1)
    serving = str(tmp_path / "serving")
    for root, on in ((str(data), True), (str(flat), False)):
        nodes = {c.id: c for c in create_components(root, serving, tiny_pipeline_config())}
        assert (nodes["TicketSearch"].exec_properties["reuse_from"] == serving) is on
        assert (nodes["MTLTrainer"].exec_properties["warm_start_from"] == serving) is on
    explicit = tiny_pipeline_config(mtl={"warm_start": "off"}, ticket={"reuse": "latest"})
    nodes = {c.id: c for c in create_components(str(data), serving, explicit)}
    assert nodes["TicketSearch"].exec_properties["reuse_from"] == serving
    assert nodes["MTLTrainer"].exec_properties["warm_start_from"] is None
    assert json.loads(nodes["TicketSearch"].exec_properties["config"])["ticket"]["reuse"] \
        == "latest"


def test_search_tickets_forces_a_search_whatever_the_config_says(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"ticket": {"reuse": {"max_age_spans": 3}}}))
    parse = cli._parser().parse_args
    assert cli.run_config(parse(["run", "--config", str(path)])).ticket.reuse == {
        "max_age_spans": 3}
    assert cli.run_config(parse(["run", "--config", str(path), "--search-tickets"])
                          ).ticket.reuse == "never"


def _network(config):
    """A seeded network of `config` (its MLP kernels are what masks are checked against)."""
    from modules import inputs
    sizes = {g: 10 for g in config.spec.vocabulary_groups()}
    return inputs.network_for({**sizes, **config.spec.bucket_tables()}, config,
                              config.ticket_tasks())


@pytest.mark.parametrize("overrides, span, reason", [
    ({"reuse": "never"}, 3, "ticket.reuse: never"),
    ({"reuse": {"max_age_spans": 0}}, 3, "were searched on span 1, 2 spans before span 3 "
                                         "(max_age_spans: 0)"),
    ({"reuse": {"max_age_spans": 1}}, None, "max_age_spans needs spans"),
    ({"reuse": "latest", "rounds": 3}, 3, "the spec, model or ticket settings differ"),
])
def test_masks_are_not_reused_when_and_saying_why(two_days, overrides, span, reason):
    from modules import ticket_reuse
    config = tiny_pipeline_config(ticket=overrides)
    network = _network(config)
    decision, masks = ticket_reuse.decide(
        config, os.path.dirname(two_days["second"]["pushed_model"]), span, network)
    assert masks is None and decision["reused"] is False and reason in decision["reason"]


def test_masks_within_the_age_limit_or_from_a_given_version_are_reused(two_days):
    from modules import ticket_reuse
    config = tiny_pipeline_config(ticket={"reuse": {"max_age_spans": 2}})
    network = _network(config)
    v1, v2 = two_days["first"]["pushed_model"], two_days["second"]["pushed_model"]
    for source, expected in ((os.path.dirname(v2), v2), (v1, v1)):
        decision, masks = ticket_reuse.decide(config, source, 3, network)
        assert decision["reused"] and decision["from"] == os.path.join(expected, "assets.extra")
        assert sorted(masks) == ["ctr", "cvr"] and decision["searched_span"] == 1
    decision, _ = ticket_reuse.decide(config, str(two_days["first"]["ticket_search"]) + "-none",
                                      3, network)
    assert decision["reason"] == "no model is pushed yet"


def _published(tmp_path, config, masks, **provenance):
    """A pushed version 3 under tmp_path/serving publishing `masks` (a stand-in SavedModel)."""
    from modules import ticket_reuse
    from modules import masks as masks_lib
    model = tmp_path / "serving" / "3"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"")
    masks_lib.save(str(model / "assets.extra"), masks,
                   {**ticket_reuse.provenance(config, 1, "elsewhere"), **provenance})
    return str(model.parent)


def test_masks_of_other_kernel_shapes_are_not_reused(tmp_path):
    from modules import ticket_reuse
    config = tiny_pipeline_config(ticket={"reuse": "latest"})
    source = _published(tmp_path, config, {t: [np.ones((4, 4), bool)] for t in ("ctr", "cvr")})
    decision, masks = ticket_reuse.decide(config, source, 2, _network(config))
    assert masks is None and "ctr's mask in" in decision["reason"]
    assert "kernel shapes [(4, 4)]" in decision["reason"]


def test_a_model_serving_a_task_from_its_ticket_has_its_masks_searched_again(tmp_path):
    from modules import ticket_reuse
    config = tiny_pipeline_config(ticket={"reuse": "latest"})
    network = _network(config)
    fitting = {t: [np.ones(k.shape, bool) for k in network.prunable_weights()]
               for t in ("ctr", "cvr")}
    for served, reused in (([], True), (["cvr"], False)):
        source = _published(tmp_path / str(len(served)), config, fitting,
                            served_by_ticket=served)
        decision, masks = ticket_reuse.decide(config, source, 2, network)
        assert decision["reused"] is reused and (masks is not None) is reused
    assert decision["reason"].startswith("the pushed model serves ['cvr'] from their tickets")


def _warmed(two_days, config):
    """(a fresh network for span 2's vocabularies, the same warm-started from version 1, the
    warm start's record)."""
    from modules import inputs, warm_start
    tft_output = tft.TFTransformOutput(two_days["outputs"]["Transform"]["transform_graph"][0].uri)
    tasks = config.spec.task_names()

    def build(sizes):
        return inputs.network_for(sizes, config, tasks)
    sizes = inputs.vocab_sizes(tft_output, config)
    warmed = build(sizes)
    record = warm_start.apply(warmed, two_days["first"]["pushed_model"], tft_output, config,
                              build)
    return build(sizes), warmed, record, tft_output


def test_known_ids_keep_version_1s_rows_and_new_ids_start_fresh(two_days):
    from modules import export
    fresh, warmed, record, tft_output = _warmed(two_days, two_days["config"])
    v1 = two_days["first"]["pushed_model"]
    with open(os.path.join(v1, "assets", "vocab_FEA_VID"), "rb") as f:
        old_vocab = [line.rstrip(b"\n") for line in f]
    new_vocab = tft_output.vocabulary_by_name("vocab_FEA_VID")
    reader = tf.train.load_checkpoint(os.path.join(v1, export.NETWORK_CHECKPOINT))
    keys = reader.get_variable_to_shape_map()
    [table] = [k for k in keys if "tables/FEA_VID/embeddings" in k]
    old_rows = reader.get_tensor(table)
    both = [t for t in new_vocab if t in set(old_vocab)]
    new = [t for t in new_vocab if t not in set(old_vocab)]
    assert both and new                          # the synthetic days share ids and add ids
    assert record["rows_kept"]["FEA_VID"] == len(both)
    rows, fresh_rows = (n.tables["FEA_VID"].embeddings.numpy() for n in (warmed, fresh))
    for token in both:
        assert np.array_equal(rows[new_vocab.index(token)], old_rows[old_vocab.index(token)])
    for token in new:
        assert np.array_equal(rows[new_vocab.index(token)], fresh_rows[new_vocab.index(token)])
    [kernel] = [k for k in keys if k.startswith("network/mlp_0.Skernel/")]  # "mlp_0/kernel"
    assert np.array_equal(warmed.kernels[0].numpy(), reader.get_tensor(kernel))   # MLP copied


def test_a_model_of_another_shape_is_refused_naming_it(two_days):
    from modules.config import ConfigError
    other = tiny_pipeline_config(model={"hidden_units": [16, 8]})
    with pytest.raises(ConfigError, match="does not fit this config"):
        _warmed(two_days, other)


def test_a_version_without_a_network_checkpoint_starts_cold(two_days, tmp_path):
    import shutil

    from modules import warm_start
    v1 = two_days["first"]["pushed_model"]
    assert warm_start.newest(os.path.dirname(v1)) == two_days["second"]["pushed_model"]
    assert warm_start.newest(v1) == v1
    old = tmp_path / "serving" / "7"
    shutil.copytree(v1, old, ignore=shutil.ignore_patterns("network"))
    assert warm_start.newest(str(old.parent)) is None and warm_start.newest(str(old)) is None
    assert warm_start.newest(str(tmp_path / "nothing")) is None
