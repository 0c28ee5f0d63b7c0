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


def eval_config(gate):
    """CTR AUC on all rows, CVR AUC on clicked rows (weight = click), CTCVR AUC; gated on CTR/CVR.

    `gate` is the config's `evaluation` section. The production `pctr` score's CTR AUC is
    reported as output `pctr_reference` (not gated).
    """
    model_spec = tfma.ModelSpec(
        signature_name=EVAL_SIGNATURE,
        preprocessing_function_names=["transform_features"],
        label_keys={"ctr": features.LABEL, "cvr": features.CONVERSION,
                    "ctcvr": features.CONVERSION, "pctr_reference": features.LABEL},
        example_weight_keys={"cvr": features.LABEL})
    metrics_specs = [
        tfma.MetricsSpec(output_names=["ctr"], metrics=[_auc_with_gate(
            gate.ctr_auc_lower_bound, gate.max_auc_regression)] + _descriptive()),
        tfma.MetricsSpec(output_names=["cvr"], metrics=[_auc_with_gate(
            gate.cvr_auc_lower_bound, gate.max_auc_regression)] + _descriptive(),
            example_weights=tfma.ExampleWeightOptions(weighted=True)),
        tfma.MetricsSpec(output_names=["ctcvr"],
                         metrics=[tfma.MetricConfig(class_name="AUC")] + _descriptive()),
        tfma.MetricsSpec(output_names=["pctr_reference"],
                         metrics=[tfma.MetricConfig(class_name="AUC")]),
    ]
    slicing_specs = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[name])
                                            for name in gate.slice_features]
    return tfma.EvalConfig(model_specs=[model_spec], metrics_specs=metrics_specs,
                           slicing_specs=slicing_specs)
