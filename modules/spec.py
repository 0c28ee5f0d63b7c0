"""The feature and task spec: the raw columns the model reads, their kinds and embedding tables,
and the tasks it learns.

Ground layer (with `modules.config`, `modules.errors`, `modules.features` and `modules.rules`):
imports nothing else of the project. It is the `spec` section of the configuration; the shipped
default, the LT4REC logs, is data (`modules/lt4rec.yaml`). Every reader of features or tasks
(Transform, the network, the trainers, the memory budget, serving, the Evaluator's config, config
validation) reads it from the config, so it travels inside the config JSON to every process.

- `features`, in field order, each of a kind:
  - `id`: one string or integer id per example ("-1" when absent), embedded;
  - `id_list`: several ids, mean-pooled; `max_length` of them kept (default
    `data.max_list_length`);
  - `numeric`: a float (or int) value, `default` when absent. Transform normalises it
    (`normalize: z_score`, or `log1p`: log(1 + max(x, 0)) then z-score) and the network embeds it
    as value x a learned vector, so it takes part in the dot interactions like an id field. With
    `buckets: N` it is instead bucketised into N quantiles and embedded as an id (its own table).
  An id feature's `group` names the vocabulary and embedding table it shares (default: its own).
- `groups`: table settings per group (a feature outside a shared group is its own group):
  `top_k`, `frequency_threshold`, `num_oov_buckets` (default: the `vocab` section) and
  `embedding_dim` (default `model.embedding_dim`; another width is projected to it by a learned
  matrix, as mixed-dimension embeddings do, so the dot interactions stay defined).
- `keys`: other raw columns (request ids, slice columns): never model inputs.
- `reference_scores`: a score column in the data (e.g. a production model's) evaluated like a task
  and reported beside ours, parsed by Transform to `score_key(column)`.
- `tasks`, each trained through its own mask and served as an output of its name:
  - `label`: a 0/1 column, or a rule over columns (`modules.rules`, e.g.
    `label == 1 and cvrlabel >= 0.8`) that Transform turns into a float 0/1 column named
    `label_key` (default `<task>_label`; a column label keeps its column's name);
  - `rows`: the rows it trains and is evaluated on: "" (all), a 0/1 column (used as it is, also
    as TFMA's example weight) or a rule (Transform emits it as float 0/1 `<task>_rows`);
  - `loss`: `focal` (`focal_alpha`, `focal_gamma`), `bce` or `mse` (towards `target`, a column
    clipped to [0, 1], or the label).
  The columns the tasks read are label columns: never model inputs, keys or scores.
- `products`: outputs that multiply task probabilities (e.g. `ctcvr: [ctr, cvr]`, ESMM's
  P(click and conversion)), evaluated on the rows of the first task against the label of the
  last, which must imply the earlier tasks' (a conversion implies a click).
"""
import dataclasses
import re
from typing import Dict, List, Optional

from modules import rules
from modules.errors import check, is_int

KINDS = ("id", "id_list", "numeric")
NORMALIZATIONS = ("z_score", "log1p")
VOCAB_SETTINGS = ("top_k", "frequency_threshold", "num_oov_buckets")
LOSSES = ("focal", "bce", "mse")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


def vocabulary_name(group):
    """The TFT vocabulary file name of a group."""
    return f"vocab_{group}"


def score_key(column):
    """Transformed name of a reference score column (its value parsed to float)."""
    return f"{column}_score"


@dataclasses.dataclass
class FeatureSpec:
    """One model input (see the module docstring)."""
    name: str = ""
    kind: str = ""
    group: str = ""                          # id, id_list: shared vocabulary and table
    max_length: Optional[int] = None         # id_list only; None: data.max_list_length
    normalize: Optional[str] = None          # numeric only; None: "z_score"
    default: Optional[float] = None          # numeric only: the value of a missing one; None: 0
    buckets: Optional[int] = None            # numeric only: embed its quantile bucket instead

    @property
    def embedded(self):
        """Whether it is looked up in an embedding table (ids, bucketised numerics)."""
        return self.kind != "numeric" or bool(self.buckets)

    @property
    def table(self):
        """Its embedding table (and vocabulary) group."""
        return self.group or self.name


@dataclasses.dataclass
class GroupSpec:
    """Settings of one embedding table; None: the default (the `vocab` section, model width)."""
    top_k: Optional[int] = None
    frequency_threshold: Optional[int] = None
    num_oov_buckets: Optional[int] = None
    embedding_dim: Optional[int] = None


@dataclasses.dataclass
class ReferenceScore:
    """A score column of the data evaluated like `task` (reported, never gated)."""
    name: str = ""
    column: str = ""
    task: str = ""


def _rule(required=False):
    """A TaskSpec field holding a rule (`modules.rules`); "" leaves an optional one unset."""
    return dataclasses.field(default="", metadata={"rule": "required" if required else "optional"})


@dataclasses.dataclass
class TaskSpec:
    """One task (see the module docstring)."""
    name: str = ""
    label: str = _rule(required=True)        # a 0/1 column or a rule
    label_key: str = ""                      # a rule label's transformed name; "": <name>_label
    rows: str = _rule()                      # "": all rows; else a 0/1 column or a rule
    loss: str = ""
    focal_alpha: Optional[float] = None      # focal only; None: 0.75 (the original LT4REC's)
    focal_gamma: Optional[float] = None      # focal only; None: 2.0
    target: str = _rule()                    # mse only: the regression target column

    @property
    def label_column(self):
        """The transformed label's name: the column itself, or `label_key` of a rule."""
        return _bare_column(self.label) or self.label_key or f"{self.name}_label"

    @property
    def rows_column(self):
        """The transformed 0/1 column of its rows; None when it takes every row."""
        if not self.rows:
            return None
        return _bare_column(self.rows) or f"{self.name}_rows"

    @property
    def focal(self):
        """(alpha, gamma) of a focal loss, defaults filled in."""
        return (0.75 if self.focal_alpha is None else self.focal_alpha,
                2.0 if self.focal_gamma is None else self.focal_gamma)

    def derived(self):
        """[(field, transformed name, rule)] of its rule label and rule rows (Transform emits
        each as a float 0/1 column); a column label or rows is used as it is."""
        return [(field, name, text) for field, name, text in (
            ("label_key", self.label_column, self.label), ("rows", self.rows_column, self.rows))
            if text and not _bare_column(text)]

    def zero_one_columns(self):
        """The columns it reads as they are, as its 0/1 label or rows."""
        return [c for c in (_bare_column(self.label), self.rows and _bare_column(self.rows)) if c]

    def columns(self):
        """The raw columns its label, rows and target read, in order of first use."""
        texts = [t for t in (self.label, self.rows, self.target) if t]
        return list(dict.fromkeys(c for text in texts for c in rules.columns(rules.parse(text))))


@dataclasses.dataclass
class ProductSpec:
    """An output multiplying the probabilities of `tasks` (see the module docstring)."""
    name: str = ""
    tasks: List[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Spec:
    """The `spec` section: features, table settings, key columns, reference scores, tasks and
    products."""
    features: List[FeatureSpec] = dataclasses.field(default_factory=list)
    groups: Dict[str, GroupSpec] = dataclasses.field(default_factory=dict)
    keys: List[str] = dataclasses.field(default_factory=list)
    reference_scores: List[ReferenceScore] = dataclasses.field(default_factory=list)
    tasks: List[TaskSpec] = dataclasses.field(default_factory=list)
    products: List[ProductSpec] = dataclasses.field(default_factory=list)

    def feature(self, name):
        """The FeatureSpec called `name`."""
        return {f.name: f for f in self.features}[name]

    def fields(self):
        """Names of every model input in field order."""
        return [f.name for f in self.features]

    def of_kind(self, kind):
        """The features of `kind`, in field order."""
        return [f for f in self.features if f.kind == kind]

    def vocabulary_groups(self):
        """{group: member id and id_list features}: shared groups (in order of first appearance)
        before single-feature ones (in field order); a group's member named like it comes first,
        the others in field order. (The order Transform builds them in, as it always has.)"""
        groups = {}
        for feature in self.features:
            if feature.kind != "numeric":
                groups.setdefault(feature.table, []).append(feature.name)
        ordered = sorted(groups.items(), key=lambda item: len(item[1]) == 1)
        return {group: tuple(sorted(members, key=lambda name: name != group))
                for group, members in ordered}

    def bucket_tables(self):
        """{bucketised numeric feature: its bucket count}: tables without a vocabulary."""
        return {f.name: f.buckets for f in self.of_kind("numeric") if f.buckets}

    def vocab_settings(self, group, vocab):
        """(top_k, frequency_threshold, num_oov_buckets) of a group; `vocab` gives defaults."""
        settings = self.groups.get(group, GroupSpec())
        return tuple(vocab_default if value is None else value for value, vocab_default in
                     zip((settings.top_k, settings.frequency_threshold, settings.num_oov_buckets),
                         (vocab.top_k, vocab.frequency_threshold, vocab.num_oov_buckets)))

    def embedding_dims(self, default):
        """{table: embedding width} of every table; `default` where a group sets none."""
        tables = list(self.vocabulary_groups()) + list(self.bucket_tables())
        return {table: self.groups.get(table, GroupSpec()).embedding_dim or default
                for table in tables}

    def list_length(self, name, default):
        """Ids kept per example of an id_list feature."""
        return self.feature(name).max_length or default

    def task(self, name):
        """The TaskSpec called `name`."""
        return {t.name: t for t in self.tasks}[name]

    def task_names(self):
        """Names of the tasks, in order."""
        return [t.name for t in self.tasks]

    def output_names(self):
        """The served outputs: every task, then every product."""
        return self.task_names() + [p.name for p in self.products]

    def eval_columns(self, name):
        """(label column, rows column or None) output `name` (a task or product) is evaluated on:
        a product on its first task's rows against its last task's label."""
        products = {p.name: p.tasks for p in self.products}
        first, last = (products[name][0], products[name][-1]) if name in products \
            else (name, name)
        return self.task(last).label_column, self.task(first).rows_column

    def label_columns(self):
        """The raw columns the tasks read (labels, rows, targets), in order of first use."""
        return list(dict.fromkeys(c for t in self.tasks for c in t.columns()))

    def rule_columns(self):
        """{transformed name: rule} of every rule label and rule rows mask (float 0/1)."""
        return {name: text for task in self.tasks for _, name, text in task.derived()}

    def transformed_labels(self):
        """Every label-side column Transform emits: label columns, then rule columns."""
        return self.label_columns() + list(self.rule_columns())

    def outputs(self):
        """{"tasks": [name], "products": {name: its tasks}, "reference_scores": {name: task}}:
        what a run serves and reports (written to its training report and summary)."""
        return {"tasks": self.task_names(),
                "products": {p.name: list(p.tasks) for p in self.products},
                "reference_scores": {r.name: r.task for r in self.reference_scores}}

    def reference_columns(self):
        """{reference name: (transformed score column, the task it is evaluated like)}."""
        return {r.name: (score_key(r.column), r.task) for r in self.reference_scores}

    def validate(self):
        """Raise ConfigError naming the first invalid field."""
        check(bool(self.features), "spec.features", self.features, "must list the model inputs")
        self._validate_tasks()
        tasks, reserved = self.task_names(), self.transformed_labels()
        seen = {}
        for i, feature in enumerate(self.features):
            where = f"spec.features[{i}]"
            _named(feature.name, f"{where}.name", seen, reserved)
            _feature(feature, f"{where} ('{feature.name}')")
        kinds = {f.name: f for f in self.features}
        for i, feature in enumerate(self.features):
            owner = kinds.get(feature.group)
            check(not feature.group or owner is None or owner.kind != "numeric",
                  f"spec.features[{i}] ('{feature.name}').group", feature.group,
                  f"mixes kinds: '{feature.group}' is a numeric feature, '{feature.name}' of "
                  f"kind {feature.kind}")
            check(not feature.group or owner is None or owner.table == feature.group,
                  f"spec.features[{i}] ('{feature.name}').group", feature.group,
                  f"names feature '{feature.group}', which is itself in group "
                  f"'{owner.table if owner else ''}': name that group instead")
        buckets = self.bucket_tables()
        for group, settings in self.groups.items():
            where = f"spec.groups.{group}"
            numeric = kinds.get(group) if kinds.get(group, FeatureSpec()).kind == "numeric" \
                else None
            check(group in self.vocabulary_groups() or numeric is not None, "spec.groups", group,
                  f"is not a group of an id or id_list feature; groups: "
                  f"{sorted(self.vocabulary_groups())}")
            vocabulary = [k for k in VOCAB_SETTINGS if getattr(settings, k) is not None]
            check(numeric is None or not vocabulary, where, vocabulary,
                  "are vocabulary settings, but a numeric feature has no vocabulary")
            check(numeric is None or group in buckets or settings.embedding_dim is None,
                  f"{where}.embedding_dim", settings.embedding_dim,
                  "applies to a numeric feature only with `buckets` (else it is embedded at "
                  "model.embedding_dim)")
            _group_settings(settings, where)
        for column in self.keys:
            _named(column, "spec.keys", seen, reserved)
        for i, reference in enumerate(self.reference_scores):
            where = f"spec.reference_scores[{i}]"
            _named(reference.column, f"{where}.column", seen, reserved)
            check(reference.task in tasks, f"{where}.task", reference.task,
                  f"is not a task; tasks: {list(tasks)}")
            check(bool(_NAME.match(reference.name or "")) and
                  reference.name not in self.output_names(), f"{where}.name", reference.name,
                  "must be a name other than a task's or product's")

    def _validate_tasks(self):
        check(bool(self.tasks), "spec.tasks", self.tasks, "must list at least one task")
        names = {}
        for i, task in enumerate(self.tasks):
            where = f"spec.tasks[{i}]"
            check(isinstance(task.name, str) and bool(_NAME.match(task.name)), f"{where}.name",
                  task.name, "must be a name of letters, digits, '_', '.' or '-'")
            check(task.name not in names, f"{where}.name", task.name,
                  f"duplicates {names.get(task.name)}: task names must be unique")
            names[task.name] = where
            _task(task, f"{where} ('{task.name}')")
        inputs = {f.name: "a model input (spec.features)" for f in self.features}
        inputs.update({c: "a key column (spec.keys)" for c in self.keys})
        inputs.update({r.column: "a reference score column" for r in self.reference_scores})
        for i, task in enumerate(self.tasks):
            for column in task.columns():
                check(column not in inputs, f"spec.tasks[{i}] ('{task.name}')", column,
                      f"reads {column!r}, which is {inputs.get(column)}: a task's columns are "
                      f"labels the model must not see")
        # Two namespaces: Transform's label-side columns, and the served outputs.
        transformed = {c: "a label column" for c in self.label_columns()}
        outputs = dict(names)
        for i, task in enumerate(self.tasks):
            for field, name, _ in task.derived():
                check(name not in transformed, f"spec.tasks[{i}].{field}", name,
                      f"names a transformed column that is also {transformed.get(name)}")
                transformed[name] = f"spec.tasks[{i}].{field}"
        for i, product in enumerate(self.products):
            where = f"spec.products[{i}].name"
            check(product.name not in outputs, where, product.name,
                  f"duplicates {outputs.get(product.name)}: output names must be unique")
            outputs[product.name] = where
        for i, product in enumerate(self.products):
            where = f"spec.products[{i}]"
            check(isinstance(product.name, str) and bool(_NAME.match(product.name)),
                  f"{where}.name", product.name,
                  "must be a name of letters, digits, '_', '.' or '-'")
            check(len(product.tasks) >= 2 and len(set(product.tasks)) == len(product.tasks),
                  f"{where} ('{product.name}').tasks", product.tasks,
                  "must list two or more different tasks")
            unknown = [t for t in product.tasks if t not in names]
            check(not unknown, f"{where} ('{product.name}').tasks", product.tasks,
                  f"names unknown task(s) {unknown}; tasks: {list(names)}")

    def schema_problems(self, types):
        """["field: problem"] for every spec column missing from a schema or typed against its
        kind; `types` is {column: "BYTES" | "INT" | "FLOAT"} of the schema's features."""
        allowed = {"id": ("BYTES", "INT"), "id_list": ("BYTES", "INT"),
                   "numeric": ("FLOAT", "INT")}
        problems = []
        for i, feature in enumerate(self.features):
            where = f"spec.features[{i}] ('{feature.name}', {feature.kind})"
            if feature.name not in types:
                problems.append(f"{where}: missing from the schema")
            elif feature.kind in allowed and types[feature.name] not in allowed[feature.kind]:
                problems.append(f"{where}: the schema types it {types[feature.name]}; "
                                f"{feature.kind} features must be one of "
                                f"{allowed[feature.kind]}")
        for group, members in self.vocabulary_groups().items():
            member_types = sorted({types[m] for m in members if m in types})
            if len(member_types) > 1:
                problems.append(f"spec group '{group}': mixes kinds: the schema types its "
                                f"members {list(members)} {member_types}")
        for i, task in enumerate(self.tasks):
            for column in task.columns():
                where = f"spec.tasks[{i}] ('{task.name}') reads '{column}'"
                if column not in types:
                    problems.append(f"{where}: missing from the schema")
                elif types[column] not in ("INT", "FLOAT"):
                    problems.append(f"{where}: the schema types it {types[column]}; rules "
                                    f"compare numbers (INT or FLOAT)")
        for where, column in ([("spec.keys", c) for c in self.keys] +
                              [(f"spec.reference_scores[{i}].column", r.column)
                               for i, r in enumerate(self.reference_scores)]):
            if column not in types:
                problems.append(f"{where} ('{column}'): missing from the schema")
        return problems


def _feature(feature, where):
    check(feature.kind in KINDS, f"{where}.kind", feature.kind,
          f"is not a kind; kinds: {list(KINDS)}")
    numeric_only = {"normalize": feature.normalize, "default": feature.default,
                    "buckets": feature.buckets}
    if feature.kind == "numeric":
        check(feature.normalize in (None,) + NORMALIZATIONS, f"{where}.normalize",
              feature.normalize, f"must be one of {list(NORMALIZATIONS)}")
        check(feature.buckets is None or (is_int(feature.buckets) and feature.buckets >= 2),
              f"{where}.buckets", feature.buckets, "must be an integer >= 2")
        check(not feature.group, f"{where}.group", feature.group,
              "cannot be set on a numeric feature: it has no vocabulary to share (a bucketised "
              "one gets its own table)")
    else:
        for key, value in numeric_only.items():
            check(value is None, f"{where}.{key}", value, "applies to numeric features only")
    check(feature.max_length is None or feature.kind == "id_list", f"{where}.max_length",
          feature.max_length, "applies to id_list features only")
    check(feature.max_length is None or (is_int(feature.max_length) and feature.max_length > 0),
          f"{where}.max_length", feature.max_length, "must be a positive integer")
    check(not feature.group or bool(_NAME.match(feature.group)), f"{where}.group",
          feature.group, "must be a name of letters, digits, '_', '.' or '-'")


def _bare_column(text):
    """The column a rule text is, if it is just one column; else None."""
    node = rules.parse(text)
    return node.value if node.kind == "column" else None


def _task(task, where):
    for field in dataclasses.fields(task):
        if "rule" not in field.metadata:
            continue
        text = getattr(task, field.name)
        if text or field.metadata["rule"] == "required":
            try:
                rules.parse(text)
            except rules.RuleError as error:
                raise rules.RuleError(f"invalid configuration: {where}.{field.name}: {error}") \
                    from None
    check(not task.target or _bare_column(task.target), f"{where}.target", task.target,
          "must be one column (the regression target)")
    check(not task.label_key or not _bare_column(task.label), f"{where}.label_key",
          task.label_key, "applies to a rule label only (a column label keeps its name)")
    check(not task.label_key or bool(_NAME.match(task.label_key)), f"{where}.label_key",
          task.label_key, "must be a name of letters, digits, '_', '.' or '-'")
    check(task.loss in LOSSES, f"{where}.loss", task.loss, f"is not a loss; losses: "
          f"{list(LOSSES)}")
    if task.loss != "focal":
        for key in ("focal_alpha", "focal_gamma"):
            check(getattr(task, key) is None, f"{where}.{key}", getattr(task, key),
                  "applies to loss: focal only")
    alpha, gamma = task.focal
    check(0 < alpha < 1, f"{where}.focal_alpha", alpha, "must be in (0, 1)")
    check(gamma >= 0, f"{where}.focal_gamma", gamma, "must be >= 0")
    check(not task.target or task.loss == "mse", f"{where}.target", task.target,
          "applies to loss: mse only")


def _group_settings(settings, where):
    check(settings.top_k is None or (is_int(settings.top_k) and settings.top_k > 0),
          f"{where}.top_k", settings.top_k, "must be a positive integer or null (no limit)")
    check(settings.frequency_threshold is None or (
        is_int(settings.frequency_threshold) and settings.frequency_threshold >= 1),
        f"{where}.frequency_threshold", settings.frequency_threshold, "must be an integer >= 1")
    check(settings.num_oov_buckets is None or (
        is_int(settings.num_oov_buckets) and settings.num_oov_buckets >= 1),
        f"{where}.num_oov_buckets", settings.num_oov_buckets,
        "must be an integer >= 1 (unseen values need an id)")
    check(settings.embedding_dim is None or (
        is_int(settings.embedding_dim) and settings.embedding_dim > 0),
        f"{where}.embedding_dim", settings.embedding_dim, "must be a positive integer")


def _named(name, where, seen, reserved):
    check(isinstance(name, str) and bool(_NAME.match(name)), where, name,
          "must be a name of letters, digits, '_', '.' or '-'")
    check(name not in reserved, where, name, f"is a transformed label name ({list(reserved)})")
    check(name not in seen, where, name, f"duplicates {seen.get(name)}")
    seen[name] = where
