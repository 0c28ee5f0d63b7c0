"""Reusing tickets (`ticket.reuse`): a day's TicketSearch takes the masks the newest pushed model
was trained through instead of searching again.

Masks live on the MLP only, so they survive vocabulary changes. Every exported model publishes
its masks in `assets.extra/masks/` with their provenance (`masks.PROVENANCE_FILE`: the span
they were searched on and the key of the settings that shaped the search). They are reused when
`ticket.reuse` is not `never`, a pushed model publishes masks, the key equals this config's,
there is a mask for every ticket task of this network's kernel shapes, and with
`max_age_spans: K` they were searched at most K spans before the span read, and the pushed
model serves no task from its ticket (the negative-transfer guard needs a ticket trained on the
day's data to compare with). Otherwise the search runs, and the decision says why.
"""
import hashlib
import json


from modules import masks as masks_lib
from modules.serving_dir import EXTRA_DIR, model_at

# The config sections whose settings shape a search (the data and vocabularies may change),
# and the settings in them that do not.
KEY_SECTIONS = ("spec", "model", "ticket")
NOT_KEYED = {"model": ("devices", "eval_batch_size", "log_every_steps", "table_memory_budget_mb"),
             "ticket": ("reuse",)}


def ticket_key(config):
    """Digest of the settings that shape a search (`KEY_SECTIONS` but `NOT_KEYED`)."""
    values = json.loads(config.to_json(KEY_SECTIONS))
    for section, names in NOT_KEYED.items():
        for name in names:
            values[section].pop(name)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def provenance(config, span, searched_in):
    """What a search publishes beside its masks: `span` searched on (None without spans), the
    `ticket_key` and the TaskMasks artifact that searched."""
    return {"searched_span": span, "ticket_key": ticket_key(config), "searched_in": searched_in}


def published(source):
    """The directory of the masks a pushed model publishes: `source` itself when it is a
    SavedModel directory, else its newest numeric version; None when nothing is pushed."""
    model = model_at(source)
    return model and f"{model}/{EXTRA_DIR}"


def _refusal(config, directory, origin, span):
    """Why the masks under `directory` (with provenance `origin`) cannot be reused on `span`
    before reading them, or None."""
    reuse = config.ticket.reuse
    if reuse == "never":
        return "ticket.reuse: never"
    if directory is None:
        return "no model is pushed yet"
    if origin is None:
        return f"{directory} publishes no ticket provenance (pushed before tickets were reused)"
    if origin["ticket_key"] != ticket_key(config):
        return (f"the spec, model or ticket settings differ from those that searched the masks "
                f"in {directory}")
    if origin.get("served_by_ticket"):
        return (f"the pushed model serves {origin['served_by_ticket']} from their tickets "
                f"(negative transfer): searching again lets the guard compare on this data")
    if isinstance(reuse, dict):
        searched = origin["searched_span"]
        if span is None or searched is None:
            return "ticket.reuse: max_age_spans needs spans (data.layout: spans) to date masks"
        if span - searched > reuse["max_age_spans"]:
            return (f"the masks in {directory} were searched on span {searched}, "
                    f"{span - searched} spans before span {span} (max_age_spans: "
                    f"{reuse['max_age_spans']})")
    return None


def _misfit(config, directory, found, shapes):
    """Why the masks `found` under `directory` do not fit a network of kernel `shapes`, or
    None."""
    missing = [t for t in config.ticket_tasks() if t not in found]
    if missing:
        return f"{directory} has no mask for task(s) {missing}"
    for task in config.ticket_tasks():
        theirs = [tuple(m.shape) for m in found[task]]
        if theirs != shapes:
            return f"{task}'s mask in {directory} has kernel shapes {theirs}, this network {shapes}"
    return None


def decide(config, source, span, network):
    """(decision, {task: masks} or None): whether `network`'s search reuses the masks published
    by the pushed model at `source` (see `published`) on `span`. The decision is JSON-able:
    {"reused", "reason" (why not, or None), "from", "searched_span", "searched_in" (the
    TaskMasks artifact that searched the reused masks)}."""
    directory = published(source) if config.ticket.reuse != "never" else None
    origin = masks_lib.load_provenance(directory) if directory else None
    reason = _refusal(config, directory, origin, span)
    found = None if reason else masks_lib.load(directory)
    reason = reason or _misfit(config, directory, found,
                               [tuple(k.shape) for k in network.prunable_weights()])
    if reason:
        return {"reused": False, "reason": reason, "from": None, "searched_span": span,
                "searched_in": None}, None
    return ({"reused": True, "reason": None, "from": directory,
             "searched_span": origin["searched_span"], "searched_in": origin["searched_in"]},
            {task: found[task] for task in config.ticket_tasks()})
