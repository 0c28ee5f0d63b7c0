"""`lt4rec synth --spec`: data for any spec, typed as `lt4rec convert` types it, with a signal per
task, a task's labels only on its rows, and the same bytes for the same seed."""
import glob
import os

import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from modules.config import Config
from pipeline import cli, synthetic_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_FILE = os.path.join(ROOT, "examples", "feed", "spec.yaml")


def _read(out):
    files = sorted(glob.glob(os.path.join(out, "*.gz")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_synthetic_rows_follow_the_spec_and_the_seed(tmp_path):
    assert cli.main(["synth", "--spec", SPEC_FILE, "--out", str(tmp_path / "a"),
                     "--rows", "3000", "--seed", "5"]) == 0
    records = _read(str(tmp_path / "a"))
    assert len(records) == 3000
    synthetic_spec.write(Config.load(spec_path=SPEC_FILE).spec, str(tmp_path / "b"), 3000, 5)
    assert _read(str(tmp_path / "b")) == records
    rows = [tf.train.Example.FromString(r).features.feature for r in records]
    click, like, ratio = (np.array([r[c].float_list.value[0] for r in rows])
                          for c in ("click", "like", "watch_ratio"))
    assert 0.1 < click.mean() < 0.9 and set(np.unique(like)) == {0.0, 1.0}
    assert not like[click == 0].any() and not ratio[click == 0].any()   # only after a click
    assert 0 < ((ratio >= 0.9) & (click == 1)).sum() < (click == 1).sum()
    ids = [[r[c].bytes_list.value[0] for c in ("user_id", "item_id", "author_id")] for r in rows]
    x = OneHotEncoder(handle_unknown="ignore").fit(ids[:2000]).transform(ids)
    model = LogisticRegression(max_iter=2000).fit(x[:2000], click[:2000])
    assert roc_auc_score(click[2000:], model.predict_proba(x[2000:])[:, 1]) > 0.6   # a signal


def test_lt4rec_only_options_are_refused_with_a_spec(tmp_path, capsys):
    assert cli.main(["synth", "--spec", SPEC_FILE, "--out", str(tmp_path), "--splits"]) == 2
    assert "--splits, --profile and --spans shape the LT4REC story" in capsys.readouterr().err
