"""Invalid configuration is refused with a message naming the field, before anything runs."""
import json
import os

import pytest

from pipeline import cli
from modules.config import Config, ConfigError
from reliability import helpers

BAD = [
    ({"ticket": {"final_density": 0.0}}, "ticket.final_density"),
    ({"ticket": {"final_density": 1.5}}, "ticket.final_density"),
    ({"ticket": {"final_density": float("nan")}}, "ticket.final_density"),
    ({"ticket": {"max_density": 2.0}}, "ticket.max_density"),
    ({"ticket": {"tasks": ["ctr", "ctcvr"]}}, "ticket.tasks = 'ctcvr' unknown task"),
    ({"mtl": {"loss_weights": {"click": 1.0}}}, "mtl.loss_weights = 'click' unknown task"),
    ({"mtl": {"task_probabilities": {"cvr": -0.5}}}, "mtl.task_probabilities.cvr"),
    ({"ticket": {"rounds": 0}}, "ticket.rounds"),
    ({"ticket": {"rounds": 2.5}}, "ticket.rounds"),
    # gone with early stopping (`*.stopping.max_epochs`): named as unknown keys
    ({"ticket": {"epochs_per_round": 1}}, "unknown key(s) ['epochs_per_round'] in ticket."),
    ({"mtl": {"epochs": 3}}, "unknown key(s) ['epochs'] in mtl."),
    ({"model": {"batch_size": 0}}, "model.batch_size"),
    ({"input": {"shuffle_buffer": 0}}, "input.shuffle_buffer"),
    ({"input": {"cache": "yes"}}, "input.cache = 'yes' must be of type bool"),
    ({"model": {"log_every_steps": 0}}, "model.log_every_steps"),
    ({"model": {"table_memory_budget_mb": -1}}, "model.table_memory_budget_mb"),
    ({"kubeflow": {"resources": {"Transform": {"gpus": 1}}}}, "kubeflow.resources.Transform"),
    ({"kubeflow": {"resources": {"Evaluator": {"cpu_limit": 0}}}},
     "kubeflow.resources.Evaluator.cpu_limit = 0 must be > 0"),
    ({"model": {"eval_batch_size": -64}}, "model.eval_batch_size"),
    ({"evaluation": {"max_auc_regression": -0.1}}, "evaluation.max_auc_regression"),
    ({"evaluation": {"auc_lower_bound": 1.5}}, "evaluation.auc_lower_bound = 1.5 must be in"),
    ({"evaluation": {"gates": {"cvr": {"auc_lower_bound": -0.5}}}},
     "evaluation.gates.cvr.auc_lower_bound = -0.5 must be in [0, 1]"),
    ({"evaluation": {"gates": {"click": {"auc_lower_bound": 0.6}}}},
     "evaluation.gates = 'click' is not a task or product"),
    # settings the task spec replaced: refused, saying where they went
    ({"data": {"cvr_threshold": 0.8}}, "data.cvr_threshold moved to spec.tasks"),
    ({"model": {"ctr_loss": "bce"}}, "model.ctr_loss moved to spec.tasks"),
    ({"model": {"focal_gamma": 1.0}}, "model.focal_gamma moved to spec.tasks"),
    ({"evaluation": {"ctr_auc_lower_bound": 0.6}},
     "evaluation.ctr_auc_lower_bound moved to evaluation.auc_lower_bound"),
    # wrong types are refused by name too (no TypeError from a comparison)
    ({"ticket": {"final_density": "0.5"}}, "ticket.final_density = '0.5' must be of type float"),
    ({"ticket": {"rounds": True}}, "ticket.rounds = True must be of type int"),
    ({"evaluation": {"auc_lower_bound": None}},
     "evaluation.auc_lower_bound = None must be of type float"),
    ({"model": {"hidden_units": [32, "16"]}}, "model.hidden_units"),
    ({"ticket": {"tasks": "ctr"}}, "ticket.tasks = 'ctr' must be of type List[str]"),
    ({"ticket": {"round": 3}}, "unknown key(s) ['round'] in ticket."),
    ({"vocab": {"top_k": 0}}, "vocab.top_k = 0 must be a positive integer or null"),
    ({"vocab": {"frequency_threshold": 0}}, "vocab.frequency_threshold = 0"),
    ({"spec": {"groups": {"FEA_UID": {"num_oov_buckets": 0}}}},
     "spec.groups.FEA_UID.num_oov_buckets = 0"),
    ({"spec": {"groups": {"FEA_UID": {"top_k": 2.5}}}},
     "spec.groups.FEA_UID.top_k = 2.5 must be of type"),
    ({"vocab": {"per_group": {"FEA_UID": {"top_k": 10}}}}, "vocab.per_group moved to spec.groups"),
    ({"model": {"devices": [""]}}, "model.devices"),
    # three splits and how they are made
    ({"data": {"eval_fraction_buckets": [4, 1]}},
     "unknown key(s) ['eval_fraction_buckets'] in data."),
    ({"data": {"split_buckets": {"train": 18, "eval": 5}}}, "data.split_buckets"),
    ({"data": {"split_buckets": {"train": 18, "validation": 0, "eval": 5}}},
     "data.split_buckets"),
    ({"data": {"split_buckets": {"train": 18, "validation": 2, "eval": 5, "test": 1}}},
     "data.split_buckets"),
    ({"data": {"validation_from": "eval"}}, "data.validation_from = 'eval' must be"),
    ({"data": {"validation_share": 0.0}}, "data.validation_share = 0.0 must be in (0, 1)"),
    ({"data": {"validation_share": 1.0}}, "data.validation_share = 1.0 must be in (0, 1)"),
    ({"data": {"validation_min_class_rows": -1}}, "data.validation_min_class_rows = -1 must be"),
    ({"data": {"validation_max_share": 1.0}}, "data.validation_max_share = 1.0 must be in (0, 1)"),
    ({"data": {"split_key": "request_id"}}, "data.split_key = 'request_id'"),
    ({"data": {"split_key": "label"}}, "data.split_key = 'label' must be empty"),
    # early stopping and negative transfer
    ({"mtl": {"negative_transfer": "ignore"}}, "mtl.negative_transfer = 'ignore' must be"),
    ({"ticket": {"stopping": {"patience": 0}}}, "ticket.stopping.patience = 0"),
    ({"mtl": {"stopping": {"patience": 0}}}, "mtl.stopping.patience = 0"),
    ({"mtl": {"stopping": {"max_epochs": 0}}}, "mtl.stopping.max_epochs = 0"),
    ({"ticket": {"stopping": {"every_steps": -1}}}, "ticket.stopping.every_steps = -1"),
    ({"mtl": {"stopping": {"min_delta": -0.01}}}, "mtl.stopping.min_delta = -0.01"),
    ({"ticket": {"stopping": {"patients": 2}}}, "unknown key(s) ['patients'] in ticket.stopping."),
    ({"ticket": {"rewind_step": -1}}, "ticket.rewind_step = -1"),
    # model regularisation and losses
    ({"model": {"dropout": 1.0}}, "model.dropout = 1.0 must be in [0, 1)"),
    ({"model": {"dropout": -0.1}}, "model.dropout = -0.1"),
    ({"model": {"embedding_l2": -1e-4}}, "model.embedding_l2 = -0.0001"),
    ({"model": {"linear_term": 1}}, "model.linear_term = 1 must be of type bool"),
]
GOOD = [
    {"data": {"split_key": "seqnum", "validation_from": "train", "validation_share": 0.5}},
    {"data": {"split_buckets": {"train": 1, "validation": 1, "eval": 1}}},
    {"model": {"dropout": 0.0, "embedding_l2": 0.0, "linear_term": False}},
    {"evaluation": {"gates": {"ctcvr": {"auc_lower_bound": 0.5}, "cvr": {}}}},
    {"ticket": {"tasks": ["cvr"]}, "mtl": {"loss_weights": {"cvr": 0.5}}},
    {"ticket": {"rewind_step": 5, "stopping": {"every_steps": 10, "min_delta": 0.5}},
     "mtl": {"stopping": {"patience": 1, "max_epochs": 1}}},
]


@pytest.mark.parametrize("values, field", BAD, ids=[f for _, f in BAD])
def test_invalid_value_is_refused_naming_the_field(values, field):
    with pytest.raises(ConfigError, match="invalid configuration") as error:
        Config.from_dict(values)
    assert field in str(error.value)


@pytest.mark.parametrize("values", GOOD, ids=range(len(GOOD)))
def test_valid_edge_values_are_accepted(values):
    config = Config.from_dict(values)
    assert Config.from_json(config.to_json()) == config


def test_tiny_and_default_configs_are_valid():
    from conftest import tiny_pipeline_config
    assert Config.from_json(Config().to_json()) == Config()
    tiny_pipeline_config()


def _run(tmp_path, capsys, config_text=None, data=None, config_name="config.json"):
    args = ["run", "--root", str(tmp_path / "root")]
    if data is not None:
        args += ["--data", str(data)]
    if config_text is not None:
        (tmp_path / config_name).write_text(config_text)
        args += ["--config", str(tmp_path / config_name)]
    code = cli.main(args)
    return code, capsys.readouterr().err


@pytest.fixture
def data_dir(tmp_path):
    return os.path.dirname(helpers.write_examples(str(tmp_path / "data" / "x.tfrecord.gz"), []))


@pytest.mark.parametrize("values, field", [BAD[0], BAD[4], BAD[7], BAD[13], BAD[16]],
                         ids=["density", "task", "rounds", "threshold", "type"])
def test_lt4rec_run_refuses_a_bad_config_file_before_anything_runs(tmp_path, capsys, data_dir,
                                                                   values, field):
    code, err = _run(tmp_path, capsys, json.dumps(values), data_dir)
    assert code == 2 and field in err
    assert not os.path.exists(tmp_path / "root")


@pytest.mark.parametrize("text, name, expected", [
    ("{not json", "config.json", "cannot parse"),
    ("ticket: [1, 2", "config.yaml", "cannot parse"),
    ("[1, 2]", "config.json", "must hold a mapping"),
])
def test_unparsable_config_file_is_refused_naming_it(tmp_path, capsys, data_dir, text, name,
                                                    expected):
    code, err = _run(tmp_path, capsys, text, data_dir, config_name=name)
    assert code == 2 and expected in err and str(tmp_path / name) in err
    assert not os.path.exists(tmp_path / "root")


def test_missing_paths_are_refused_before_anything_runs(tmp_path, capsys, data_dir):
    code, err = _run(tmp_path, capsys, data=tmp_path / "no-such-dir")
    assert code == 2 and f"--data '{tmp_path / 'no-such-dir'}' is not a directory" in err
    code, err = cli.main(["run", "--data", data_dir, "--root", str(tmp_path / "root"),
                          "--config", str(tmp_path / "missing.yaml")]), capsys.readouterr().err
    assert code == 2 and f"config file not found: {tmp_path / 'missing.yaml'}" in err
    assert not os.path.exists(tmp_path / "root")


def test_create_pipeline_refuses_an_invalid_config_object(tmp_path):
    from pipeline.pipeline import create_pipeline
    config = Config()
    config.ticket.final_density = 2.0
    with pytest.raises(ConfigError, match="ticket.final_density"):
        create_pipeline(str(tmp_path / "root"), str(tmp_path), str(tmp_path / "serving"), config)


def test_the_large_data_config_is_valid_and_is_the_one_the_readme_shows():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(repo, "pipeline", "configs", "large_data.yaml")
    config = Config.load(path)
    assert config.model.batch_size == 4096 and not config.input.cache
    with open(path, encoding="utf-8") as f, \
            open(os.path.join(repo, "README.md"), encoding="utf-8") as readme:
        assert "```yaml\n" + f.read() + "```" in readme.read()
