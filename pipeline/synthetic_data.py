"""Deterministic synthetic LT4REC logs with a planted, learnable multi-task signal.

The output has exactly the 24 raw features of `modules.features`, serialized as gzip TFRecords of
`tf.train.Example`. Pool sizes (videos, users, content providers, categories, tags) grow with
`rows`, as set by the profile (`PROFILES`):

- "default": full request logs; pools of rows/4 videos, rows/12 users, rows/5 CPs and rows/5 tags
  and keywords (at least 200, 50, 50 and 1,000), so ids recur: at 4,300 rows about 60% of the
  distinct FEA_VID values and 97% of the FEA_UID values occur 3 times or more.
- "small_logs": like a small (~4k rows) sample of production logs, where most ids (FEA_VID,
  FEA_UID, FEA_CP, tags/keywords) occur once or twice. Pools of 4 videos, 3 users, 2 CPs and 15
  tags/keywords per row, and only 1 + Poisson(0.3) impressions of each request are logged (at
  their original positions), so users do not recur through their requests. At 4,300 rows (as at
  any size) about 94% of the distinct FEA_VID values, 84% of FEA_UID, 82% of FEA_CP and 84% of
  FEA_IXFTAG occur at most twice (together 85%, 65%, 50% and 56% of their occurrences); heads
  remain (at 4,300 rows the most frequent CP occurs ~100 times, the most frequent tag ~500).

- "conflict": small_logs' pools and logging, with tasks that partly conflict: completion follows
  a second, independent user taste (not the one clicks follow) and falls with the video appeal
  and the algorithm effect that raise clicks (`_CONFLICT`). What helps one task then hurts or
  says nothing about the other, so sharing can cost a task (negative transfer); the quality
  benchmark measures it there.

All profiles tell the same story below, with the same click and completion rates.

Generative story
----------------
World: ICAT2 categories (each under one of 29 ICAT1 parents) with a latent vector and a
completion bias; a pool of CJK tag/keyword tokens, each belonging to a category; content providers
(CP) with a quality factor; videos (VID) with a category, a CP, a popularity, a cover quality, a
duration and tag/keyword lists drawn mostly from their category's tokens; users (UID) with 1-6
interest categories (FEA_UCAT), a latent taste near those categories, an age, a user group and a
click propensity partly set by the group. Cover quality runs from "0" (plain) to "3" (most
eye-catching); list lengths follow the real data (`_LIST_LENGTHS`); FEA_AGE, FEA_UGROUP and
FEA_ORDER are "-1" for a few percent of users/impressions.

Logs: a request (`seqnum`) has one user, an optional source video (the previous watch, giving the
FEA_S* features, "-1" when absent) and 1-10 impressions at positions 0..9 (FEA_ORDER), all logged
except in "small_logs". Videos come from the user's interest categories with probability 0.6,
otherwise by category popularity.

    affinity   = 1.5 taste.category + 0.8 [category in FEA_UCAT] + 0.4 [category of source video]
    click      = a + affinity + user propensity + video appeal - 0.1 position
                 + algorithm effect (FEA_ALGID) + cover attractiveness (FEA_COVERQUALITY)
    completion = b + affinity + CP quality + category completion bias
                 + cover honesty (FEA_COVERQUALITY, opposite sign: clickbait)
                 - 0.6 log(duration / 90 s)

`label` ~ Bernoulli(sigmoid(click)). On a click the video is completed (`cvrlabel` 1.0) with
probability sigmoid(completion), otherwise `cvrlabel` ~ Beta(2, 3), a partial play rate; `cvrlabel`
is 0.0 on non-clicks. `pctr` = sigmoid(click + N(0, 0.5^2)), the noisy production score. The offsets
a and b are set by bisection so that the click rate is 0.39 and the completion rate of clicks 0.67.
"""
import collections
import math
import os
import zlib

import numpy as np
import tensorflow as tf

from modules import features

CLICK_RATE = 0.39
COMPLETION_RATE = 0.67
EVAL_BUCKETS = 5                     # one request in EVAL_BUCKETS goes to eval

_CJK = ("的一是在人有我他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可"
        "里后小心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已"
        "老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女")
_ALGIDS = tuple(str(100 + 7 * k) for k in range(13))
_COVER_QUALITIES = ("0", "1", "2", "3")
_COVER_SHARE = (0.15, 0.40, 0.30, 0.15)
_COVER_CLICK = np.array([-0.6, -0.15, 0.25, 0.7])
_COVER_COMPLETION = np.array([0.5, 0.2, -0.25, -0.8])
_N_ICAT1 = 29
_N_UGROUPS = 12
_LATENT_DIM = 8
_MISSING = features.MISSING.encode()

# (min, mean, max) list lengths of the real data.
_LIST_LENGTHS = {
    "FEA_SIKEYWORD": (1, 7.3, 8), "FEA_STAG": (1, 4.3, 6), "FEA_IXFTAG": (1, 5.6, 6),
    "FEA_IKEYWORD": (2, 7.6, 8), "FEA_UCAT": (1, 3.7, 6),
}
_NO_SOURCE = 0.05
_NO_AGE = 0.04
_NO_UGROUP = 0.03
_NO_ORDER = 0.03

Simulation = collections.namedtuple("Simulation", "columns click_logit completion_logit")
# sizes: rows -> pool sizes; kept_extra: see `_requests`; conflict: see `_logits`.
Profile = collections.namedtuple("Profile", "sizes kept_extra conflict")
# "conflict" profile: completion's weights on the second taste, on video appeal and on the
# algorithm effect (both of which raise clicks).
_CONFLICT = {"taste": 1.5, "appeal": -1.0, "algid": -1.5}
# Spans (`_on_day`): share of videos and users there from day 1, a new video's weight on its first
# day, and the per-day drift of user tastes.
_FIRST_DAY = 0.6
_NEW_BOOST = 3.0
_DRIFT = 0.1


def simulate(rows: int, seed: int, profile: str = "default", day: int = None,
             days: int = 1) -> Simulation:
    """Return the columns (see `generate`) with the latent click and completion logits; with
    `day` (1..`days`), that day's `rows` of a `days`-long period (`_on_day`)."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    sizes, kept_extra, conflict = PROFILES[profile]
    rng = np.random.default_rng(seed)
    world = _world(rng, sizes(rows * days))
    if day is not None:
        if not 1 <= day <= days:
            raise ValueError(f"day must be in 1..{days}, got {day}")
        world = _on_day(world, day, days, seed)
        rng = np.random.default_rng([seed, day])
    logs = _logs(rng, world, rows, kept_extra)
    click, completion = _logits(rng, world, logs, conflict)
    labels, cvrlabels, pctr = _labels(rng, click, completion)
    columns = _columns(world, logs)
    columns[features.LABEL] = labels.tolist()
    columns[features.CVR_LABEL] = cvrlabels.tolist()
    columns[features.PCTR] = [f"{p:.6f}".encode() for p in pctr.tolist()]
    return Simulation(columns, click, completion)


def generate(rows: int, seed: int, profile: str = "default") -> dict[str, list]:
    """Return {feature: list with one value per row}: bytes for single-valued string features,
    tuples of bytes for multi-valued ones, int for `label`, float for `cvrlabel`."""
    return simulate(rows, seed, profile).columns


def examples(rows: int, seed: int, profile: str = "default"):
    """Yield `rows` serialized tf.Example protos."""
    yield from _serialize(generate(rows, seed, profile), range(rows))


def write_dataset(out_dir: str, rows: int, seed: int, splits: bool = False,
                  shards: int = 1, profile: str = "default") -> list[str]:
    """Write gzip TFRecord shards `data-0000i-of-0000n.tfrecord.gz` into `out_dir` (or into
    `out_dir/train` and `out_dir/eval`, split 80/20 by request); return the file paths."""
    return _write_columns(out_dir, generate(rows, seed, profile), rows, splits, shards)


def write_spans(out_dir: str, spans: int, rows: int, seed: int, splits: bool = False,
                shards: int = 1, profile: str = "default") -> list[str]:
    """Write `spans` days of `rows` rows each into `out_dir/span-1` ... `out_dir/span-<spans>`
    (each as `write_dataset` writes a directory): one world whose ids appear over the days and
    whose users' tastes drift (`_on_day`); return the file paths."""
    if spans < 1:
        raise ValueError(f"spans must be >= 1, got {spans}")
    return [path for day in range(1, spans + 1) for path in _write_columns(
        os.path.join(out_dir, f"span-{day}"),
        simulate(rows, seed, profile, day, spans).columns, rows, splits, shards)]


def _write_columns(out_dir, columns, rows, splits, shards):
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    if not splits:
        return _write_shards(out_dir, columns, np.arange(rows), shards)
    is_eval = np.array([zlib.crc32(s) % EVAL_BUCKETS == 0 for s in columns[features.SEQNUM]])
    paths = []
    for name, members in (("train", ~is_eval), ("eval", is_eval)):
        split_dir = os.path.join(out_dir, name)
        paths += _write_shards(split_dir, columns, np.flatnonzero(members), shards)
    return paths


def _write_shards(out_dir, columns, row_ids, shards):
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, part in enumerate(np.array_split(row_ids, shards)):
        path = os.path.join(out_dir, f"data-{i:05d}-of-{shards:05d}.tfrecord.gz")
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with tf.io.TFRecordWriter(tmp, options="GZIP") as writer:
                for record in _serialize(columns, part.tolist()):
                    writer.write(record)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        paths.append(path)
    return paths


def _serialize(columns, row_ids):
    single = [(n, columns[n]) for n in features.SINGLE_VALUED + (features.PCTR, features.SEQNUM)]
    multi = [(n, columns[n]) for n in features.MULTI_VALUED]
    labels, cvrlabels = columns[features.LABEL], columns[features.CVR_LABEL]
    for i in row_ids:
        example = tf.train.Example()
        feature = example.features.feature
        for name, column in single:
            feature[name].bytes_list.value.append(column[i])
        for name, column in multi:
            feature[name].bytes_list.value.extend(column[i])
        feature[features.LABEL].int64_list.value.append(labels[i])
        feature[features.CVR_LABEL].float_list.value.append(cvrlabels[i])
        yield example.SerializeToString(deterministic=True)


# ----------------------------------------------------------------------------- the world

def _default_sizes(rows):
    return {
        "items": max(200, rows // 4), "users": max(50, rows // 12), "cps": max(50, rows // 5),
        "tokens": max(1000, rows // 5), "icat2": _icat2_size(rows),
    }


def _small_logs_sizes(rows):
    return {
        "items": max(200, 4 * rows), "users": max(50, 3 * rows), "cps": max(50, 2 * rows),
        "tokens": max(1000, 15 * rows), "icat2": _icat2_size(rows),
    }


def _icat2_size(rows):
    return int(np.clip(round(100 * (rows / 20000) ** 0.25), 30, 1000))


PROFILES = {"default": Profile(_default_sizes, None, False),
            "small_logs": Profile(_small_logs_sizes, 0.3, False),
            "conflict": Profile(_small_logs_sizes, 0.3, True)}


def _world(rng, sizes):
    world = {}
    world.update(_categories(rng, sizes["icat2"]))
    world.update(_tokens(rng, sizes["tokens"], world))
    world.update(_items(rng, sizes["items"], sizes["cps"], world))
    world.update(_users(rng, sizes["users"], world))
    return world


def _categories(rng, n):
    parent_codes = rng.choice(np.arange(10, 100), _N_ICAT1, replace=False)
    parent = _assign(rng, n, _N_ICAT1)
    vectors = rng.normal(0, 1 / np.sqrt(_LATENT_DIM), (n, _LATENT_DIM))
    return {
        "cat_share": _zipf(rng, n, 0.8),
        "cat_vector": vectors,
        "cat_completion": rng.normal(0, 0.4, n),
        "icat1_pool": _pool(str(parent_codes[p]) for p in parent),
        "icat2_pool": _pool(f"{parent_codes[p]}{j:04d}" for j, p in enumerate(parent)),
    }


def _tokens(rng, n, world):
    n_cats = len(world["cat_share"])
    base = len(_CJK)
    words = [_CJK[c // base ** 2] + _CJK[c // base % base] + _CJK[c % base]
             for c in _codes(rng, n, base ** 3)]
    return {"token_cat": _assign(rng, n, n_cats), "token_share": _zipf(rng, n, 1.0),
            "token_pool": _pool(words)}


def _items(rng, n, n_cps, world):
    category = _assign(rng, n, len(world["cat_share"]), world["cat_share"])
    popularity = rng.normal(0, 1, n)
    duration = np.clip(np.round(rng.lognormal(np.log(90), 0.9, n)), 3, 3600).astype(np.int64)
    tags = _item_words(rng, category, world, _LIST_LENGTHS["FEA_IXFTAG"][2])
    keywords = _item_words(rng, category, world, _LIST_LENGTHS["FEA_IKEYWORD"][2])
    return {
        "item_cat": category, "item_weight": np.exp(popularity),
        "item_appeal": 0.3 * popularity + rng.normal(0, 0.3, n),
        "item_cp": rng.choice(n_cps, n, p=_zipf(rng, n_cps, 0.7)),
        "cp_quality": rng.normal(0, 0.6, n_cps),
        "item_cover": rng.choice(len(_COVER_QUALITIES), n, p=_COVER_SHARE),
        "item_duration": duration,
        "vid_pool": _pool(f"{v:012x}" for v in _codes(rng, n, 2 ** 48)),
        "cp_pool": _pool(str(10 ** 6 + v) for v in _codes(rng, n_cps, 9 * 10 ** 6)),
        "duration_pool": _pool(str(d) for d in duration.tolist()),
        "ixftag_pool": _list_pool(world, tags, _lengths(rng, n, *_LIST_LENGTHS["FEA_IXFTAG"])),
        "ikeyword_pool": _list_pool(world, keywords,
                                    _lengths(rng, n, *_LIST_LENGTHS["FEA_IKEYWORD"])),
        "stag_pool": _list_pool(world, tags, _source_lengths(rng, n, "FEA_STAG")),
        "sikeyword_pool": _list_pool(world, keywords, _source_lengths(rng, n, "FEA_SIKEYWORD")),
    }


def _users(rng, n, world):
    n_cats = len(world["cat_share"])
    lengths = _lengths(rng, n, *_LIST_LENGTHS["FEA_UCAT"])
    interests = _distinct(rng.choice(n_cats, (n, 12), p=world["cat_share"]), lengths)
    mask = interests >= 0
    taste = (world["cat_vector"][interests] * mask[..., None]).sum(1) / mask.sum(1)[:, None]
    group = rng.integers(_N_UGROUPS, size=n)
    ages = rng.integers(13, 66, n)
    return {
        "user_weight": rng.lognormal(0, 1.0, n),
        "user_interests": interests,
        "user_taste": taste + rng.normal(0, 0.3 / np.sqrt(_LATENT_DIM), taste.shape),
        "user_propensity": rng.normal(0, 0.4, _N_UGROUPS)[group] + rng.normal(0, 0.4, n),
        "uid_pool": _pool(str(10 ** 9 + v) for v in _codes(rng, n, 9 * 10 ** 9)),
        "age_pool": _pool(_missing_or(rng, ages.astype(str), _NO_AGE)),
        "ugroup_pool": _pool(_missing_or(rng, group.astype(str), _NO_UGROUP)),
        "ucat_pool": _list_pool_of(world["icat2_pool"], interests),
    }


def _item_words(rng, category, world, max_len):
    """max_len distinct tokens per item, 75% from the item's category, 25% by global share."""
    shape = (len(category), 3 * max_len)
    own = _sample_within(rng, world["token_cat"], np.ones(len(world["token_cat"])),
                         np.repeat(category, shape[1]))
    anywhere = rng.choice(len(world["token_cat"]), shape, p=world["token_share"])
    candidates = np.where(rng.random(shape) < 0.75, own.reshape(shape), anywhere)
    return _distinct(candidates, np.full(len(category), max_len))


def _on_day(world, day, days, seed):
    """The world on `day` of `days`: videos and users appear over the period (`_FIRST_DAY` of
    them on day 1, the rest on a random day; every category keeps a day-1 video), a video is
    shown `_NEW_BOOST` times as often on its first day, and user tastes drift by `_DRIFT` per
    day along a direction of their own. The release days and directions are the same for
    every day (their own seeded stream)."""
    rng = np.random.default_rng([seed, 0])
    world = dict(world)
    released = {}
    for name, weights in (("item", "item_weight"), ("user", "user_weight")):
        n = len(world[weights])
        released[name] = np.where(rng.random(n) < _FIRST_DAY, 1, rng.integers(1, days + 1, n))
    released["item"][np.unique(world["item_cat"], return_index=True)[1]] = 1
    world["item_weight"] = world["item_weight"] * (released["item"] <= day) * np.where(
        released["item"] == day, _NEW_BOOST, 1.0)
    world["user_weight"] = world["user_weight"] * (released["user"] <= day)
    direction = rng.normal(0, 1 / np.sqrt(_LATENT_DIM), world["user_taste"].shape)
    world["user_taste"] = world["user_taste"] + _DRIFT * (day - 1) * direction
    return world


# ----------------------------------------------------------------------------- the logs

def _logs(rng, world, rows, kept_extra):
    request, position = _requests(rng, rows, kept_extra)
    n_requests = int(request[-1]) + 1
    user_weight = world["user_weight"] / world["user_weight"].sum()
    request_user = rng.choice(len(user_weight), n_requests, p=user_weight)
    source = _pick_items(rng, world, request_user, 0.7)
    source[rng.random(n_requests) < _NO_SOURCE] = -1
    user = request_user[request]
    return {
        "request": request, "position": position, "user": user,
        "item": _pick_items(rng, world, user, 0.6), "source": source[request],
        "algid": rng.choice(len(_ALGIDS), rows, p=_zipf(rng, len(_ALGIDS), 1.0)),
        "order_missing": rng.random(rows) < _NO_ORDER,
        "seqnum_pool": _pool(f"{v:016x}" for v in _codes(rng, n_requests, 2 ** 64)),
    }


def _requests(rng, rows, kept_extra):
    """(request, position) per row. Pages show 1-10 impressions; every impression is logged when
    `kept_extra` is None, else a page keeps 1 + Poisson(kept_extra) of them (positions kept)."""
    pages = np.minimum(1 + rng.poisson(4, rows), 10)
    sizes = pages if kept_extra is None else np.minimum(1 + rng.poisson(kept_extra, rows), pages)
    n_requests = int(np.searchsorted(np.cumsum(sizes), rows)) + 1
    request = np.repeat(np.arange(n_requests), sizes[:n_requests])[:rows]
    starts = np.searchsorted(request, np.arange(n_requests))
    slot = np.arange(rows) - starts[request]
    if kept_extra is None:
        return request, slot
    keys = np.where(np.arange(10) < pages[:n_requests, None], rng.random((n_requests, 10)), 2.0)
    shown = np.argsort(keys, axis=1)
    kept = np.sort(np.where(np.arange(10) < sizes[:n_requests, None], shown, 10), axis=1)
    return request, kept[request, slot]


def _pick_items(rng, world, users, from_interests):
    """One item per user: from a random interest category with prob `from_interests`."""
    interests = world["user_interests"][users]
    counts = (interests >= 0).sum(1)
    liked = interests[np.arange(len(users)), (rng.random(len(users)) * counts).astype(int)]
    popular = rng.choice(len(world["cat_share"]), len(users), p=world["cat_share"])
    category = np.where(rng.random(len(users)) < from_interests, liked, popular)
    return _sample_within(rng, world["item_cat"], world["item_weight"], category)


def _logits(rng, world, logs, conflict=False):
    item, user, source = logs["item"], logs["user"], logs["source"]
    category = world["item_cat"][item]
    cover = world["item_cover"][item]
    taste = np.einsum("ij,ij->i", world["user_taste"][user], world["cat_vector"][category])
    affinity = (1.5 * taste
                + 0.8 * (world["user_interests"][user] == category[:, None]).any(1)
                + 0.4 * ((source >= 0) & (world["item_cat"][source] == category)))
    algid_effect = rng.normal(0, 0.35, len(_ALGIDS))
    click = (affinity + world["user_propensity"][user] + world["item_appeal"][item]
             - 0.1 * logs["position"] + algid_effect[logs["algid"]] + _COVER_CLICK[cover])
    completion = (affinity + world["cp_quality"][world["item_cp"][item]]
                  + world["cat_completion"][category] + _COVER_COMPLETION[cover]
                  - 0.6 * np.log(world["item_duration"][item] / 90))
    if conflict:        # drawn last, so the other profiles' streams stay as they were
        second_taste = rng.normal(0, 1 / np.sqrt(_LATENT_DIM),
                                  world["user_taste"].shape)[user]
        completion += (_CONFLICT["taste"] * np.einsum("ij,ij->i", second_taste,
                                                      world["cat_vector"][category])
                       - 1.5 * taste + _CONFLICT["appeal"] * world["item_appeal"][item]
                       + _CONFLICT["algid"] * algid_effect[logs["algid"]])
    click += _offset_for_mean(click, CLICK_RATE, np.ones_like(click))
    completion += _offset_for_mean(completion, COMPLETION_RATE, _sigmoid(click))
    return click, completion


def _labels(rng, click, completion):
    rows = len(click)
    clicked = rng.random(rows) < _sigmoid(click)
    completed = rng.random(rows) < _sigmoid(completion)
    partial = np.clip(np.round(rng.beta(2, 3, rows), 4), 1e-4, 1.0)
    cvrlabel = np.where(clicked, np.where(completed, 1.0, partial), 0.0).astype(np.float32)
    pctr = _sigmoid(click + rng.normal(0, 0.5, rows))
    return clicked.astype(np.int64), cvrlabel, pctr


def _columns(world, logs):
    item, user, source = logs["item"], logs["user"], logs["source"]
    category = world["item_cat"][item]
    source_category = np.where(source >= 0, world["item_cat"][source], -1)
    order = np.where(logs["order_missing"], -1, logs["position"])
    order_pool = _pool(str(p) for p in range(10))
    columns = {
        "FEA_SVID": world["vid_pool"][source],
        "FEA_SCP": world["cp_pool"][np.where(source >= 0, world["item_cp"][source], -1)],
        "FEA_SICAT1": world["icat1_pool"][source_category],
        "FEA_SICAT2": world["icat2_pool"][source_category],
        "FEA_VID": world["vid_pool"][item],
        "FEA_CP": world["cp_pool"][world["item_cp"][item]],
        "FEA_ICAT1": world["icat1_pool"][category],
        "FEA_ICAT2": world["icat2_pool"][category],
        "FEA_AGE": world["age_pool"][user],
        "FEA_DURATION": world["duration_pool"][item],
        "FEA_ALGID": _pool(_ALGIDS)[logs["algid"]],
        "FEA_ORDER": order_pool[order],
        "FEA_COVERQUALITY": _pool(_COVER_QUALITIES)[world["item_cover"][item]],
        "FEA_UID": world["uid_pool"][user],
        "FEA_UGROUP": world["ugroup_pool"][user],
        "FEA_SIKEYWORD": world["sikeyword_pool"][source],
        "FEA_STAG": world["stag_pool"][source],
        "FEA_IXFTAG": world["ixftag_pool"][item],
        "FEA_IKEYWORD": world["ikeyword_pool"][item],
        "FEA_UCAT": world["ucat_pool"][user],
        features.SEQNUM: logs["seqnum_pool"][logs["request"]],
    }
    return {name: column.tolist() for name, column in columns.items()}


# ----------------------------------------------------------------------------- helpers

def _pool(strings):
    """Object array of encoded strings with MISSING appended, so that index -1 means missing."""
    values = [s.encode() for s in strings] + [_MISSING]
    pool = np.empty(len(values), dtype=object)
    pool[:] = values
    return pool


def _list_pool_of(value_pool, ids):
    """Object array of tuples value_pool[ids[r]] (ids padded with -1), plus (MISSING,) at -1."""
    lists = [tuple(value_pool[v] for v in row if v >= 0) for row in ids.tolist()]
    pool = np.empty(len(lists) + 1, dtype=object)
    pool[:] = lists + [(_MISSING,)]
    return pool


def _list_pool(world, token_ids, lengths):
    """Per-item tuples of the first `lengths` tokens of `token_ids`."""
    kept = np.where(np.arange(token_ids.shape[1]) < lengths[:, None], token_ids, -1)
    return _list_pool_of(world["token_pool"], kept)


def _lengths(rng, n, low, mean, high):
    """List lengths in [low, high] with the given mean: `high` w.p. q, else uniform below it."""
    uniform_mean = (low + high - 1) / 2
    q = (mean - uniform_mean) / (high - uniform_mean)
    return np.where(rng.random(n) < q, high, rng.integers(low, high, n))


def _source_lengths(rng, n, name):
    """Lengths for a source-video list, compensating for the (MISSING,) lists of no-source rows."""
    low, mean, high = _LIST_LENGTHS[name]
    return _lengths(rng, n, low, (mean - _NO_SOURCE) / (1 - _NO_SOURCE), high)


def _distinct(candidates, lengths):
    """Per row, the first lengths[r] distinct candidates (fewer if too few), padded with -1."""
    out = np.full((len(candidates), int(lengths.max())), -1)
    for r, (row, n) in enumerate(zip(candidates.tolist(), lengths.tolist())):
        picked = list(dict.fromkeys(row))[:n]
        out[r, :len(picked)] = picked
    return out


def _assign(rng, n, n_groups, share=None):
    """A group for each of n members, every group non-empty (n >= n_groups)."""
    rest = rng.choice(n_groups, n - n_groups, p=share)
    return rng.permutation(np.concatenate([np.arange(n_groups), rest]))


def _sample_within(rng, groups, weights, wanted):
    """For each entry of `wanted` (a non-empty group), a member drawn proportional to weight."""
    order = np.argsort(groups, kind="stable")
    cumulative = np.cumsum(weights[order])
    ends = np.searchsorted(groups[order], np.arange(groups.max() + 1), side="right")
    starts = np.concatenate([[0], ends[:-1]])
    low = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0.0)[wanted]
    high = cumulative[ends - 1][wanted]
    position = np.searchsorted(cumulative, low + rng.random(len(wanted)) * (high - low), "right")
    return order[np.clip(position, starts[wanted], ends[wanted] - 1)]


def _zipf(rng, n, exponent):
    """Shuffled Zipf shares summing to 1."""
    share = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(share / share.sum())


def _codes(rng, n, modulus):
    """n distinct random-looking codes in [0, modulus): a seeded affine bijection of 0..n-1."""
    high = min(modulus, 2 ** 62)
    multiplier = int(rng.integers(high // 3, high))
    while math.gcd(multiplier, modulus) != 1:
        multiplier += 1
    offset = int(rng.integers(0, high))
    return [(i * multiplier + offset) % modulus for i in range(n)]


def _missing_or(rng, values, rate):
    missing = rng.random(len(values)) < rate
    return [features.MISSING if m else v for v, m in zip(values.tolist(), missing.tolist())]


def _offset_for_mean(logits, target, weights):
    """The offset c with weighted mean of sigmoid(logits + c) equal to target (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        if np.average(_sigmoid(logits + middle), weights=weights) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
