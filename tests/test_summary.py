"""The console summary for the spec's outputs (any number of tasks), from a summary dict."""
import copy

import pytest

from modules.config import Config, ConfigError
from pipeline import summary
from test_spec import TOY


def _task(auc):
    return {"dense_auc": auc, "ticket_auc": auc + 0.01, "mtl_auc": auc + 0.02, "density": 0.25,
            "validation_auc": {"dense": auc - 0.01, "ticket": auc, "mtl": auc + 0.01},
            "epochs_trained": {"mtl": 2.0}, "calibration": 1.1,
            "negative_transfer": {"mtl_lost": auc > 0.7, "served_by": "ticket",
                                  "mtl_validation_auc": 0.70, "ticket_validation_auc": 0.71,
                                  "mtl_eval_auc": 0.69, "ticket_eval_auc": 0.72}}


def test_the_console_summary_has_a_row_per_task_and_a_line_for_products_and_references():
    result = {"outputs": {"tasks": ["click", "finish", "long"], "products": {"click_finish": ["click", "finish"]},
                          "reference_scores": {"old_model": "click"}},
              "click": _task(0.6), "finish": _task(0.65), "long": _task(0.75),
              "click_finish_auc": 0.6123, "old_model_auc": 0.5555,
              "overlap": {"jaccard": 0.25, "shared": 10, "total": 100},
              "gates": {"click": {"auc_lower_bound": 0.55, "max_auc_regression": 0.01},
                        "finish": {"auc_lower_bound": 0.6, "max_auc_regression": 0.02}},
              "blessed": True, "pushed_model": "/serving/1", "transformed_examples": "t",
              "vocabularies": "v", "summary_path": "s.json"}
    lines = summary.render(result).splitlines()
    rows = [line.split()[0] for line in lines[2:5]]
    assert rows == ["CLICK", "FINISH", "LONG"]
    assert lines[3].split()[7:10] == ["0.6600", "/", "0.6700"]  # finish: masked MTL val / eval
    assert [line for line in lines if "NEGATIVE TRANSFER" in line] == [
        next(line for line in lines if line.startswith("  NEGATIVE TRANSFER LONG"))]
    assert ("  CLICK_FINISH AUC (MTL): 0.6123   old_model AUC (scored like CLICK): 0.5555"
            in lines)
    assert "  mask overlap: jaccard 0.2500, shared 10 of 100 connections" in lines
    assert ("  gates (eval AUC >= bound, and at most the allowed drop below the last pushed "
            "model): CLICK >= 0.55 (drop 0.01), FINISH >= 0.6 (drop 0.02); not gated: LONG, "
            "CLICK_FINISH") in lines


def test_outputs_that_would_overwrite_summary_entries_are_refused():
    values = copy.deepcopy(TOY)
    values["spec"]["tasks"] = values["spec"]["tasks"][:2] + [
        {"name": "model", "label": "label", "loss": "bce"}]
    with pytest.raises(ConfigError, match=r"\['model'\] would overwrite entries of the run "
                                          r"summary"):
        summary.check_outputs(Config.from_dict(values).spec)
    summary.check_outputs(Config.from_dict(copy.deepcopy(TOY)).spec)
