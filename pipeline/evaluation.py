"""The TFMA EvalConfig of the Evaluator: metrics, slices and the gates that decide the blessing."""
import tensorflow_model_analysis as tfma

EVAL_SIGNATURE = "evaluation"


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
