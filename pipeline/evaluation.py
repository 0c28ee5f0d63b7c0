"""The TFMA EvalConfig of the Evaluator: metrics, slices and the gates that decide the blessing."""
import tensorflow_model_analysis as tfma

from modules import features

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
    """MetricsSpec arguments: metrics weighted by the output's example weight (CVR: the click)."""
    return {"example_weights": tfma.ExampleWeightOptions(weighted=True)} if weighted else {}


def eval_config(config):
    """CTR AUC on all rows, CVR AUC on clicked rows (weight = click), CTCVR AUC; gated on CTR/CVR.

    The gates are the config's `evaluation` section. Each reference score of the spec (the
    production `pctr` as `pctr_reference`) is evaluated like its task and reported, not gated.
    """
    gate, references = config.evaluation, config.spec.reference_scores
    label_keys = {"ctr": features.LABEL, "cvr": features.CONVERSION,
                  "ctcvr": features.CONVERSION}
    weight_keys = {"cvr": features.LABEL}
    model_spec = tfma.ModelSpec(
        signature_name=EVAL_SIGNATURE,
        preprocessing_function_names=["transform_features"],
        label_keys={**label_keys, **{r.name: label_keys[r.task] for r in references}},
        example_weight_keys={**weight_keys, **{r.name: weight_keys[r.task] for r in references
                                               if r.task in weight_keys}})
    metrics_specs = [
        tfma.MetricsSpec(output_names=["ctr"], metrics=[_auc_with_gate(
            gate.ctr_auc_lower_bound, gate.max_auc_regression)] + _descriptive()),
        tfma.MetricsSpec(output_names=["cvr"], metrics=[_auc_with_gate(
            gate.cvr_auc_lower_bound, gate.max_auc_regression)] + _descriptive(),
            **_weighted(True)),
        tfma.MetricsSpec(output_names=["ctcvr"],
                         metrics=[tfma.MetricConfig(class_name="AUC")] + _descriptive()),
    ] + [tfma.MetricsSpec(output_names=[r.name], metrics=[tfma.MetricConfig(class_name="AUC")],
                          **_weighted(r.task in weight_keys)) for r in references]
    slicing_specs = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[name])
                                            for name in gate.slice_features]
    return tfma.EvalConfig(model_specs=[model_spec], metrics_specs=metrics_specs,
                           slicing_specs=slicing_specs)
