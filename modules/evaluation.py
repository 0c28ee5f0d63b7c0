"""The TFMA EvalConfig of the Evaluator: metrics, slices and the gates that decide the blessing,
and the gate settings a run may override (Kubeflow run parameters)."""
import dataclasses
import json

import tensorflow_model_analysis as tfma

from modules.config import Config, ConfigError

EVAL_SIGNATURE = "evaluation"
# The `evaluation` settings a run may set (run parameters of the Kubeflow pipeline, execution
# properties of the Evaluator): both bounds of every task, and `gates` (JSON, per output).
GATE_PARAMETERS = ("auc_lower_bound", "max_auc_regression", "gates")


def _auc_with_gate(lower_bound, max_regression):
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_regression}))
    # Gate on the overall slice only; per-slice AUCs (small slices) are reported, not gated.
    return tfma.MetricConfig(class_name="AUC", per_slice_thresholds=[
        tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)])


def _descriptive():
    return [tfma.MetricConfig(class_name=name) for name in
            ("ExampleCount", "MeanLabel", "MeanPrediction", "Calibration", "CalibrationPlot")]


def _weighted(weighted):
    """MetricsSpec arguments: metrics weighted by the output's example weight (its rows)."""
    return {"example_weights": tfma.ExampleWeightOptions(weighted=True)} if weighted else {}


def eval_config(config):
    """Each task's and product's AUC on its rows (a task's rows column is the example weight);
    gated as `Config.gate` says (every task by default, products when `evaluation.gates` lists
    them). Each reference score of the spec (the production `pctr` as `pctr_reference`) is
    evaluated like its task and reported, not gated.
    """
    spec, references = config.spec, config.spec.reference_scores
    keys = {name: spec.eval_columns(name) for name in spec.output_names()}
    keys.update({r.name: keys[r.task] for r in references})
    model_spec = tfma.ModelSpec(
        signature_name=EVAL_SIGNATURE,
        preprocessing_function_names=["transform_features"],
        label_keys={name: label for name, (label, _) in keys.items()},
        example_weight_keys={name: weight for name, (_, weight) in keys.items() if weight})
    metrics_specs = []
    for name in spec.output_names():
        gate = config.gate(name)
        auc = _auc_with_gate(*gate) if gate else tfma.MetricConfig(class_name="AUC")
        metrics_specs.append(tfma.MetricsSpec(output_names=[name],
                                              metrics=[auc] + _descriptive(),
                                              **_weighted(keys[name][1] is not None)))
    metrics_specs += [tfma.MetricsSpec(output_names=[r.name],
                                       metrics=[tfma.MetricConfig(class_name="AUC")],
                                       **_weighted(keys[r.name][1] is not None))
                      for r in references]
    slicing_specs = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[name])
                                            for name in config.evaluation.slice_features]
    return tfma.EvalConfig(model_specs=[model_spec], metrics_specs=metrics_specs,
                           slicing_specs=slicing_specs)


def gate_values(config):
    """{name in GATE_PARAMETERS: value} of `config`'s evaluation section (`gates` as JSON)."""
    evaluation = config.evaluation
    gates = {name: {key: value for key, value in dataclasses.asdict(gate).items()
                    if value is not None} for name, gate in evaluation.gates.items()}
    return {"auc_lower_bound": float(evaluation.auc_lower_bound),
            "max_auc_regression": float(evaluation.max_auc_regression),
            "gates": json.dumps(gates, sort_keys=True)}


def gated_config(config_json, auc_lower_bound=None, max_auc_regression=None, gates=None):
    """The Config of `config_json` (of its sections, `spec` and `evaluation` at least) with a
    run's gate values in place of its `evaluation` ones (None keeps one); `gates` is the JSON of a
    whole `evaluation.gates` mapping and replaces it. ConfigError naming the run parameter when a
    value is invalid."""
    values = json.loads(config_json)
    evaluation = dict(values["evaluation"])
    for name, value in (("auc_lower_bound", auc_lower_bound),
                        ("max_auc_regression", max_auc_regression)):
        if value is not None:
            evaluation[name] = value
    if gates is not None:
        try:
            evaluation["gates"] = json.loads(gates)
        except ValueError as error:
            raise ConfigError(f"invalid run parameter gates: not JSON ({error}): {gates!r}; "
                              f'expected the evaluation.gates mapping, e.g. '
                              f'{{"<task>": {{"auc_lower_bound": 0.6}}}}') from None
    try:
        return Config.from_dict(dict(values, evaluation=evaluation), sections=set(values))
    except ConfigError as error:
        raise ConfigError(f"{error} (set by the run parameters {', '.join(GATE_PARAMETERS)})") \
            from None
