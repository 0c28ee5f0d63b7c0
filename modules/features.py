"""The LT4REC input features: names, kinds and which ones share an embedding table.

Ground layer (with `modules.config`): imports nothing else of the project.

This is the single description of the 24 raw features; the schema (`schema/schema.pbtxt`), the
synthetic generator, the Transform module and the model all read their feature lists from here.
"""

# Single-valued string features (one value per example, "-1" when missing).
SINGLE_VALUED = (
    "FEA_SVID", "FEA_SCP", "FEA_SICAT1", "FEA_SICAT2", "FEA_VID", "FEA_CP", "FEA_ICAT1",
    "FEA_ICAT2", "FEA_AGE", "FEA_DURATION", "FEA_ALGID", "FEA_ORDER", "FEA_COVERQUALITY",
    "FEA_UID", "FEA_UGROUP",
)
# Multi-valued string features (lists of tags/keywords), mean-pooled by the model.
MULTI_VALUED = ("FEA_SIKEYWORD", "FEA_STAG", "FEA_IXFTAG", "FEA_IKEYWORD", "FEA_UCAT")
STRING_FEATURES = SINGLE_VALUED + MULTI_VALUED

LABEL = "label"              # int64 click, 0/1
CVR_LABEL = "cvrlabel"       # float play-completion rate in [0, 1], 0 on non-clicks
PCTR = "pctr"                # production CTR score printed as a string; evaluation only
SEQNUM = "seqnum"            # request id; not a model feature
RAW_FEATURES = STRING_FEATURES + (LABEL, CVR_LABEL, PCTR, SEQNUM)

# Transformed (output) names that are not ids.
CONVERSION = "conversion"    # float 0/1: clicked and cvrlabel >= cvr_threshold
PCTR_SCORE = "pctr_score"    # pctr parsed to float

MISSING = "-1"
PAD_ID = -1                  # transformed id lists are padded with this (and it masks them)

# Features that share one vocabulary and one embedding table (original LT4REC configuration).
# The key names the group (and its table); members are computed over the union of their values.
SHARED_VOCABULARIES = {
    "FEA_VID": ("FEA_VID", "FEA_SVID"),
    "FEA_CP": ("FEA_CP", "FEA_SCP"),
    "FEA_ICAT2": ("FEA_ICAT2", "FEA_SICAT1", "FEA_SICAT2", "FEA_ICAT1", "FEA_UCAT"),
    "FEA_IXFTAG": ("FEA_IXFTAG", "FEA_STAG", "FEA_IKEYWORD"),
}


def vocabulary_groups():
    """Return {group name: member features} covering every string feature exactly once."""
    groups = dict(SHARED_VOCABULARIES)
    grouped = {f for members in groups.values() for f in members}
    for name in STRING_FEATURES:
        if name not in grouped:
            groups[name] = (name,)
    return groups


def group_of(feature):
    """Return the vocabulary group (and embedding table) name of a string feature."""
    for group, members in vocabulary_groups().items():
        if feature in members:
            return group
    raise KeyError(f"unknown feature {feature!r}")


def vocabulary_name(group):
    """Return the TFT vocabulary file name used for a group."""
    return f"vocab_{group}"
