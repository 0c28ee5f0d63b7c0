"""Every benchmark script once with --quick: it runs, prints a table and writes the documented JSON.

One tiny pipeline run (made by `benchmarks.pipeline_time --quick`) is shared by the other scripts
through `--root`. The scripts run in this process (one TensorFlow import); `python -m benchmarks.<name> --help` checks
each command line entry point.
"""
import json
import os
import subprocess
import sys

import pytest

from benchmarks import (common, daily, model_size, pipeline_time, quality, scale, serving,
                        throughput)

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


def _run(module, work, *extra):
    out = os.path.join(str(work), f"{module.NAME}.json")
    returned = module.main(["--quick", "--work", str(work), "--out", out, *extra])
    with open(out, encoding="utf-8") as f:
        on_disk = json.load(f)
    assert on_disk["benchmark"] == module.NAME and on_disk["quick"] is True
    assert on_disk["environment"]["cpu_count"] >= 1
    assert on_disk["environment"]["load_average_1_5_15"]
    assert json.loads(json.dumps(returned, sort_keys=True)) == on_disk
    return on_disk


def _positive(value):
    return isinstance(value, (int, float)) and value > 0


@pytest.fixture(scope="module")
def timing(work):
    return _run(pipeline_time, work)


@pytest.fixture(scope="module")
def root(timing):
    return timing["sizes"][0]["root"]


def test_pipeline_time_reports_every_component(timing, capsys):
    (size,) = timing["sizes"]
    assert size["rows"] == common.QUICK_ROWS
    assert set(size["components_s"]) == set(pipeline_time.COMPONENTS)
    assert all(t >= 0 for t in size["components_s"].values())
    assert size["total_s"] >= 0.95 * sum(size["components_s"].values())
    assert size["components_s"]["Transform"] > 0 and size["components_s"]["TicketSearch"] > 0
    assert _positive(size["peak_rss_mb_incl_children"])
    cpu = size["cpu_s_incl_children"]
    assert _positive(cpu["total"]) and set(cpu["components"]) == set(size["components_s"])
    assert cpu["components"]["TicketSearch"] > 0
    assert 0.0 <= size["other_processes_cpu_share"] <= 1.0
    assert size["seconds_per_100k_rows"] == pytest.approx(size["total_s"] / size["rows"] * 1e5)
    assert timing["scaling"][0]["time_ratio_to_smallest"]["total"] == pytest.approx(1.0)
    assert set(timing["targets"]) == {"pipeline_seconds_at_100k", "pipeline_1m_over_100k"}
    assert timing["extrapolated"] is None               # one size: nothing to extrapolate from
    assert os.path.exists(os.path.join(size["root"], "metadata.sqlite"))


def test_scaling_exponents_and_labelled_extrapolation():
    def size(rows, total, transform):
        return {"rows": rows, "total_s": total,
                "components_s": {"Transform": transform, "TicketSearch": total - transform}}
    sizes = [size(20_000, 200.0, 100.0), size(100_000, 600.0, 200.0)]
    (_, second) = pipeline_time.scaling(sizes)
    assert second["time_ratio_to_smallest"]["total"] == pytest.approx(3.0)
    assert second["exponent_vs_previous"]["total"] == pytest.approx(0.6826, abs=1e-4)
    guess = pipeline_time.extrapolate(sizes, 1_000_000)
    assert guess["label"].startswith("EXTRAPOLATED")
    assert guess["total_s"] == pytest.approx(600 + 400 / 80_000 * 900_000)
    assert pipeline_time.extrapolate(sizes, 100_000) is None     # measured: no extrapolation


def test_scale_measures_each_trainer_on_distinct_rows_in_its_own_process(work):
    result = _run(scale, work)
    runs = result["runs"]
    assert [(r["component"], r["day"], r["batch_size"]) for r in runs] == [
        ("TicketSearch", "large", 64), ("MTLTrainer", "base", 64), ("MTLTrainer", "large", 64)]
    assert result["raw_rows"] == {"base": common.QUICK_ROWS, "large": 2 * common.QUICK_ROWS}
    search, base, large = runs
    assert search["rows"] == large["rows"] > base["rows"]          # each day's own train split
    assert all(r["distinct_rows"] == r["rows"] for r in runs)
    assert large["vocabulary_rows"] > base["vocabulary_rows"]        # the tables grow with the day
    assert large["embedding_tables_mb"] > base["embedding_tables_mb"]
    for root in result["run_roots"].values():                      # up to Transform only
        assert os.path.isdir(os.path.join(root, "pipeline", "Transform"))
        assert not os.path.exists(os.path.join(root, "pipeline", "TicketSearch"))
    for r in runs:
        assert _positive(r["peak_rss_mb"]) and _positive(r["examples_per_s"]), r
        assert r["passes"] > 0
    for r in (base, large):
        parts = ("compute_bound", "held_distinct_batches", "input_only", "serial_estimate")
        assert all(_positive(r[f"{part}_examples_per_s"]) for part in parts), r
        assert r["serial_estimate_examples_per_s"] < min(r["held_distinct_batches_examples_per_s"],
                                                         r["input_only_examples_per_s"])
    ratios = result["ratios"]
    assert ratios["mtl_rows_largest_over_smallest"] == pytest.approx(large["rows"] / base["rows"])
    growth = large["embedding_tables_mb"] - base["embedding_tables_mb"]
    assert ratios["mtl_embedding_tables_growth_mb"] == pytest.approx(growth)
    assert ratios["mtl_peak_rss_largest_over_smallest_plus_table_growth"] == pytest.approx(
        large["peak_rss_mb"] / (base["peak_rss_mb"] + growth))
    assert set(ratios["mtl_seconds_beyond_steps"]) == {"base@64", "large@64"}
    steps_s = base["rows"] * base["passes"] / base["held_distinct_batches_examples_per_s"]
    assert ratios["mtl_seconds_beyond_steps"]["base@64"] == pytest.approx(
        base["train_s"] - steps_s)
    phases = ratios["mtl_phase_seconds"]["large@64"]
    assert set(phases) == {"input_wait", "first_steps", "steps", "checks", "outside_fit"}
    assert all(phases[p] > 0 for p in phases) and sum(phases.values()) == pytest.approx(
        large["train_s"])


def test_throughput(root, work):
    result = _run(throughput, work, "--root", root)
    assert result["batch_sizes"] == [256]
    assert result["train_rows"] > 0
    for part in ("ticket_round", "ticket_search", "mtl"):
        assert _positive(result[part]["256"]["examples_per_s"]["median"]), part
        assert _positive(result[part]["256"]["peak_rss_mb"]), part
    assert result["mtl"]["256"]["task_steps_per_example"] == 2
    assert _positive(result["input_pipeline"]["batches"]["256"]["examples_per_s"]["median"])
    breakdown = result["mtl_step_breakdown"]
    for key in ("embeddings_and_interactions_ms", "forward_one_task_ms",
                "forward_backward_one_task_ms", "mtl_step_both_tasks_ms"):
        assert _positive(breakdown[key]), key
    assert breakdown["forward_one_task_ms"] < breakdown["mtl_step_both_tasks_ms"]
    assert result["reference_tf1_examples_per_s"] == common.REFERENCE_TF1_EXAMPLES_PER_S
    assert result["targets"]["mtl_examples_per_s_at_4096"]["measured"] is None   # no 4096 here
    mtl = result["mtl"]["256"]
    assert _positive(mtl["pass_seconds"]["steps"]) and mtl["pass_seconds"]["input_wait"] >= 0
    share = result["mtl_over_compute_bound"]
    bound = breakdown["compute_bound_examples_per_s"]
    assert share["passes"] == pytest.approx(mtl["examples_per_s"]["median"] / bound)
    assert share["steps_alone"] == pytest.approx(
        mtl["examples_per_pass"] / mtl["pass_seconds"]["steps"] / bound)


def test_serving(root, work):
    result = _run(serving, work, "--root", root)
    one, many = result["batch_1"]["predict"], result["batch_n"]["predict"]
    assert 0 < one["p50_ms"] <= one["p90_ms"] <= one["p99_ms"]
    assert len(one["blocks"]) == result["repeats"] and one["blocks"][0]["calls"] == 50
    assert result["batch_size"] == 256 and _positive(many["examples_per_s"])
    for path in ("transform_features_only", "session_run_only", "client_round_trip"):
        assert _positive(result["batch_1"][path]["p50_ms"]), path
    assert result["model"].startswith(os.path.join(root, "serving"))
    checks = result["targets"]
    assert checks["serving_p50_ms_at_batch_1"]["measured"] == one["p50_ms"]
    assert checks["serving_examples_per_s_at_batch_256"]["measured"] == many["examples_per_s"]
    assert _positive(result["load_s"])


def test_model_size(root, work):
    result = _run(model_size, work, "--root", root)
    b, p = result["bytes"], result["parameters"]
    assert b["total"] == b["saved_model_pb"] + b["variables"] + b["assets"] + b["other"]
    assert 0 < b["variables_gzip"] and result["vocab_files"] > 0
    kinds = p["by_kind"]
    own = {"embeddings", "mlp_biases", "heads", "shared_mlp_kernels", "ctr_masked_kernels",
           "cvr_masked_kernels", "linear_terms"}
    # plus the ticket networks of tasks served from their tickets, if the tiny run had some
    served = {kind for kind in kinds if kind.startswith("served_")}
    assert own | served == set(kinds) and {k[len("served_"):] for k in served} <= own
    assert p["shipped"] == sum(k["stored"] for k in kinds.values())
    assert p["dense"] < p["shipped"] and p["shipped_nonzero"] <= p["shipped"]
    for task in ("ctr", "cvr"):
        assert 0 < p["task_mlp_density"][task] <= 1
    assert kinds["ctr_masked_kernels"]["stored"] == kinds["shared_mlp_kernels"]["stored"]
    # the dense export (all-ones masks) has no ticket networks: compare the MTL network's share
    dense = result["dense_export_parameters"]
    mtl = {key: p[key] - sum(kinds[kind][field] for kind in served)
           for key, field in (("shipped", "stored"), ("shipped_nonzero", "nonzero"))}
    assert dense["shipped"] == mtl["shipped"] and dense["shipped_nonzero"] >= mtl["shipped_nonzero"]
    assert result["targets"]["model_megabytes"]["measured"] == pytest.approx(b["total"] / 1e6)


@pytest.mark.parametrize("module", [pipeline_time, throughput, serving, model_size, quality,
                                    daily])
def test_every_script_is_a_module_command(module):
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module.NAME}", "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"python -m benchmarks.{module.NAME}" in proc.stdout and "--quick" in proc.stdout


def test_quality_and_its_report(root, work, tmp_path):
    result = _run(quality, work, "--root", root)
    assert result["seeds"] == [1, 2]
    assert result["selected_on"] == "validation" and result["validation_rows"] > 0
    assert result["arm_order"] == list(quality.ARMS) + ["lt4rec+ctcvr_loss"]
    assert result["metrics"] == ["ctr", "cvr", "ctcvr"]
    for arm in result["arm_order"]:
        for metric in result["metrics"]:
            entry = result["arms"][arm][metric]
            assert len(entry["values"]) == 2 and 0.0 <= entry["mean"] <= 1.0
            assert entry["std"] >= 0.0
        assert set(result["arms"][arm]["validation"]) == {"ctr", "cvr"}
    assert result["arms"]["logistic_regression"]["ctr"]["std"] == 0.0   # deterministic
    assert set(result["logistic_regression_c"]) == {"ctr", "cvr"}
    diff = result["differences"]["lt4rec_minus_mmoe"]["ctr"]
    per_seed = [s["lt4rec"]["ctr"] - s["mmoe"]["ctr"] for s in result["per_seed"]]
    assert diff["mean"] == pytest.approx(sum(per_seed) / 2)
    assert all(0 < t["ctr"]["density"] <= 1 for t in result["tickets"])
    sizes = {arm: result["arms"][arm]["parameters"] for arm in result["arm_order"]
             if arm not in ("logistic_regression", "lt4rec_mtl_only")}
    assert sizes["lt4rec"]["dense"] == sizes["shared_bottom"]["dense"]     # one MLP, masked
    # Kept by some ticket (a dense round may be chosen on tiny data): at most all of it.
    assert sizes["lt4rec"]["dense_used"] <= sizes["shared_bottom"]["dense_used"] \
        == sizes["shared_bottom"]["dense"]
    assert sizes["mmoe"]["embeddings"] == sizes["ple"]["embeddings"] \
        == sizes["lt4rec"]["embeddings"] > 0
    for arm in ("lt4rec", "lt4rec+ctcvr_loss", "shared_bottom", "mmoe", "ple"):
        assert all(v > 0 for v in result["arms"][arm]["serving_p50_ms"].values()), arm

    from pipeline import report
    index = report.render(root, str(tmp_path / "report"), os.path.join(str(work),
                                                                       "quality.json"))
    page = open(index, encoding="utf-8").read()
    lt4rec = result["arms"]["lt4rec"]["cvr"]
    assert f"{lt4rec['mean']:.4f} ± {lt4rec['std']:.4f}" in page
    assert os.path.exists(tmp_path / "report" / "auc_comparison.png")


def test_quality_on_the_three_task_spec(work, capsys):
    result = _run(quality, work, "--dataset", "feed", "--seeds", "1")
    tasks = ["click", "like", "finish"]
    assert result["dataset"] == "feed" and result["metrics"] == tasks + ["click_like"]
    assert result["arm_order"] == list(quality.ARMS) + ["lt4rec+click_like_loss"]
    assert result["metric_rows"]["click"] == "all eval rows"
    assert result["metric_rows"]["click_like"].endswith("score click*like")
    for arm in result["arm_order"]:
        assert set(result["arms"][arm]["validation"]) == set(tasks), arm
        assert all(0.0 <= result["arms"][arm][m]["mean"] <= 1.0 for m in result["metrics"])
    assert set(result["logistic_regression_c"]) == set(tasks)
    assert set(result["tickets"][0]) >= set(tasks)
    single, shared = (result["arms"][a]["parameters"]["dense"]
                      for a in ("dense_single_task", "shared_bottom"))
    assert single == 3 * shared                     # one network per task
    assert "CLICK_LIKE AUC" in capsys.readouterr().out


def test_daily_runs_span_2_warm_with_reused_masks_beside_a_cold_start(work, capsys):
    result = _run(daily, work)
    (run,) = result["runs"].values()
    first, warm, cold = run["span1"], run["span2_warm"], run["span2_cold"]
    assert (first["span"], warm["span"], cold["span"]) == (1, 2, 2)
    assert first["masks_reused"] is False and first["warm_started_from"] is None
    assert warm["warm_started_from"] == first["pushed_model"]
    assert cold["masks_reused"] is False and cold["warm_started_from"] is None
    # Span 2 reuses span 1's masks unless version 1 serves a task from its ticket (the guard's
    # call on tiny data; then the day searches again: ticket_reuse).
    assert warm["masks_reused"] is ("ticket" not in first["served_by"].values())
    if warm["masks_reused"]:
        assert warm["components_s"]["TicketSearch"] < cold["components_s"]["TicketSearch"]
    paired = result["warm_minus_cold_eval_auc"]
    assert set(paired) == {"ctr", "cvr", "ctcvr"}
    for output, diff in paired.items():
        assert diff["values"] == [pytest.approx(warm["eval_auc"][output]
                                                - cold["eval_auc"][output])]
    assert result["span2_over_span1_wall"]["values"] == [
        pytest.approx(warm["wall_s"] / first["wall_s"])]
    assert "warm - cold eval AUC (paired per seed)" in capsys.readouterr().out
