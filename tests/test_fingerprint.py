"""Cache keys follow the code each step runs: the files its entry module imports, transitively,
so editing the pusher, the evaluator or the exporter does not re-run the ticket search."""
from pipeline import fingerprint

OTHER_STEPS = ("components/atomic_pusher/", "components/evaluator/", "components/baseline_model/",
               "pipeline/", "kubeflow/")


def test_the_ticket_search_key_covers_its_code_and_no_other_step():
    code = fingerprint.TICKET_CODE
    assert {"components/ticket_search/executor.py", "modules/ticket_search.py",
            "modules/pruning.py", "modules/training.py", "modules/model.py",
            "components/artifacts.py", "modules/config.py"} <= set(code)
    assert not [f for f in code if f.startswith(OTHER_STEPS + ("components/mtl_trainer/",))]
    assert "modules/export.py" not in code and "modules/mtl.py" not in code


def test_the_trainer_key_covers_export_and_mtl_but_not_the_pusher():
    code = fingerprint.TRAINER_CODE
    assert {"components/mtl_trainer/executor.py", "modules/mtl.py", "modules/export.py",
            "modules/training.py"} <= set(code)
    assert not [f for f in code if f.startswith(OTHER_STEPS + ("components/ticket_search/",))]


def test_transform_and_example_gen_keys_stay_with_their_code():
    assert "modules/preprocessing.py" in fingerprint.TRANSFORM_CODE
    assert not [f for f in fingerprint.TRANSFORM_CODE if f.startswith("components/")]
    assert {"components/split_example_gen/executor.py",
            "components/split_example_gen/spans.py"} <= set(fingerprint.EXAMPLE_GEN_CODE)
    assert "modules/model.py" not in fingerprint.EXAMPLE_GEN_CODE


def test_a_change_to_a_covered_file_changes_the_key(tmp_path, monkeypatch):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "a.py").write_text("from modules import b\n")
    (tmp_path / "modules" / "b.py").write_text("def f():\n    import modules.c\n")
    (tmp_path / "modules" / "c.py").write_text("X = 1\n")
    (tmp_path / "modules" / "d.py").write_text("Y = 1\n")
    monkeypatch.setattr(fingerprint, "_ROOT", str(tmp_path))
    code = fingerprint.imported_code.__wrapped__("modules/a.py")
    assert code == ("modules/a.py", "modules/b.py", "modules/c.py")   # imports inside functions
    before = fingerprint.code_fingerprint.__wrapped__(code)
    (tmp_path / "modules" / "d.py").write_text("Y = 2\n")
    assert fingerprint.code_fingerprint.__wrapped__(code) == before
    (tmp_path / "modules" / "c.py").write_text("X = 2\n")
    assert fingerprint.code_fingerprint.__wrapped__(code) != before
