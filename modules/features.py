"""The LT4REC dataset: its shipped spec file and the column names its synthetic story uses.

Ground layer (with `modules.config`, `modules.errors`, `modules.rules` and `modules.spec`):
imports nothing else of the project. The feature spec itself is data (`modules/lt4rec.yaml`, read by
`modules.config` as the default `spec` section); the name lists below are computed from it for
the synthetic LT4REC generator and the tests. Production code reads features from the config's
spec, never from these lists.
"""
import copy
import functools
import os

import yaml

from modules.spec import score_key

LT4REC_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lt4rec.yaml")

LABEL = "label"              # int64 click, 0/1
CVR_LABEL = "cvrlabel"       # float play-completion rate in [0, 1], 0 on non-clicks
CONVERSION = "conversion"    # transformed float 0/1: the cvr task's label rule

MISSING = "-1"               # the value of an absent id
PAD_ID = -1                  # transformed id lists are padded with this (and it masks them)


def lt4rec_defaults():
    """The shipped LT4REC settings (config defaults: `spec`, `data`, `evaluation`; and `moved`,
    the LT4REC settings the task spec replaced), a fresh copy on every call."""
    return copy.deepcopy(_parsed())


@functools.lru_cache(maxsize=None)
def _parsed():
    with open(LT4REC_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


_FEATURES = _parsed()["spec"]["features"]
# Single-valued string features (one value per example, "-1" when missing).
SINGLE_VALUED = tuple(f["name"] for f in _FEATURES if f["kind"] == "id")
# Multi-valued string features (lists of tags/keywords), mean-pooled by the model.
MULTI_VALUED = tuple(f["name"] for f in _FEATURES if f["kind"] == "id_list")
STRING_FEATURES = SINGLE_VALUED + MULTI_VALUED
# Groups of several features sharing one vocabulary and table: {group: members}.
SHARED_VOCABULARIES = {
    group: tuple(f["name"] for f in _FEATURES if f.get("group", f["name"]) == group)
    for group in dict.fromkeys(f["group"] for f in _FEATURES if f.get("group"))}
TASKS = tuple(t["name"] for t in _parsed()["spec"]["tasks"])  # ("ctr", "cvr")
SEQNUM = _parsed()["spec"]["keys"][0]                        # request id; not a model feature
PCTR = _parsed()["spec"]["reference_scores"][0]["column"]    # production CTR score (a string)
PCTR_SCORE = score_key(PCTR)                                 # pctr parsed to float
RAW_FEATURES = STRING_FEATURES + (LABEL, CVR_LABEL, PCTR, SEQNUM)
