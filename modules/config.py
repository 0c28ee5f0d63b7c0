"""All configuration of lt4rec-tfx in one place.

A `Config` is built from defaults, optionally overlaid with a JSON or YAML file
(`lt4rec run --config FILE`), and validated before anything runs. Components receive the
sections they need as JSON strings (`Config.to_json()` / `Config.from_json()`), so every
process (local, Beam worker, Kubeflow pod) sees the same values.

Defaults that name a dataset's columns (the feature spec, the split key, the slices) are read
from the shipped LT4REC file, `modules/lt4rec.yaml`; the `spec` section is `modules.spec.Spec`.

Ground layer (with `modules.errors`, `modules.features`, `modules.rules` and `modules.spec`):
imports nothing else of the project, so modules, components, the Kubeflow runner and the
benchmarks read it without importing the pipeline.
"""
import dataclasses
import json
import os
import typing
from typing import Dict, List, Optional, Union

from modules import features
from modules.errors import ConfigError, check as _check, is_int as _is_int
from modules.spec import Spec

# The data splits: train fits, validation chooses (ticket rounds, early stopping, defaults), eval
# only reports and gates.
SPLITS = ("train", "validation", "eval")


def _lt4rec(section, key=None):
    """The shipped LT4REC default of `section` or `section.key` (`modules/lt4rec.yaml`)."""
    values = features.lt4rec_defaults()[section]
    return values if key is None else values[key]


@dataclasses.dataclass
class DataConfig:
    """Input data, splits and labels."""
    synthetic_rows: int = 20000          # rows generated when `lt4rec run` gets no --data
    synthetic_seed: int = 7
    max_list_length: int = 8             # multi-valued lists are truncated/padded to this
    # "given": <data>/train and <data>/eval are the splits; "hash": hash-split every file;
    # "auto": "given" when both subdirectories exist (probed for local paths only), else "hash".
    split_mode: str = "auto"
    # Daily data: "spans" reads <data>/span-<N>/ (N without leading zeros), each holding what a
    # flat root holds (files to hash-split, or train/ and eval/ [validation/]); a run takes the
    # newest span (or `lt4rec run --span N`). "flat": <data> itself. "auto": "spans" when a
    # span-<N> directory exists (probed for local paths only), else "flat".
    layout: str = "auto"
    # Spans layout: a run reads the newest `window_spans` spans up to its span (each split from
    # each of them), e.g. 7 trains on a week.
    window_spans: int = 1
    # Hash mode: hash buckets per split (72% / 8% / 20% by default).
    split_buckets: Dict[str, int] = dataclasses.field(
        default_factory=lambda: {"train": 18, "validation": 2, "eval": 5})
    # Given mode: "directory" reads <data>/validation/; "train" carves `validation_share` of the
    # train files' records out by hash; "auto": "directory" when it exists (on any filesystem:
    # remote roots are probed when ExampleGen runs), else "train".
    validation_from: str = "auto"
    validation_share: float = 0.1
    # Small data: a hashed or carved validation grows (taking train records by the same hash)
    # until each task's rarer class (among the task's rows: positives or negatives of its label)
    # is expected to hold this many validation rows, up to `validation_max_share`
    # of the records it is taken from (a warning says when that cap leaves it short); 0: off.
    validation_min_class_rows: int = 100
    validation_max_share: float = 0.25
    # What the split hash reads: a feature name keeps every record with the same value in one
    # split. The default, the request id "seqnum", keeps each request's impressions together in
    # all three splits (and in the carved validation), so validation and eval never see a
    # request train saw. "" hashes the whole serialized record (data without a request key).
    split_key: str = dataclasses.field(default_factory=lambda: _lt4rec("data", "split_key"))


@dataclasses.dataclass
class VocabConfig:
    """Transform vocabularies: the defaults of every group (`spec.groups` sets one group's)."""
    top_k: Optional[int] = None
    frequency_threshold: int = 1
    num_oov_buckets: int = 10


@dataclasses.dataclass
class InputConfig:
    """How the trainers stream the Transform output: tf.data over its gzip TFRecord shards."""
    # Rows in the shuffle buffer (~0.5 KB each as serialized records). A buffer at least as large
    # as a split shuffles it uniformly; on large data it mixes within a window, and the shard
    # order is reshuffled every epoch.
    shuffle_buffer: int = 100000
    interleave_files: int = 4            # shards read in parallel
    read_buffer_mb: int = 8              # read-ahead per open shard
    # Keep each split's serialized records in memory after its first pass (small data only: the
    # whole split is held). Later epochs then skip reading and decompressing.
    cache: bool = False


@dataclasses.dataclass
class ModelConfig:
    """The LT4REC network and its optimizer (each task's loss is in `spec.tasks`)."""
    embedding_dim: int = 16
    hidden_units: List[int] = dataclasses.field(default_factory=lambda: [512, 256, 128])
    # The original used lr 1e-4 at batch 4096 on production-scale logs. On the 20k-row default
    # data that barely moves the weights in one epoch, so magnitude pruning only re-finds θ0's
    # large weights (CTR/CVR masks ~95% identical). These defaults train enough per round.
    learning_rate: float = 1e-3
    batch_size: int = 128
    eval_batch_size: int = 4096
    dropout: float = 0.1                 # on every hidden MLP layer, training steps only
    embedding_l2: float = 1e-4           # L2 on the embedding (and linear) rows a batch looks up
    linear_term: bool = True             # per-task linear (wide) logit over every id feature
    seed: int = 42
    devices: List[str] = dataclasses.field(default_factory=list)  # empty: all GPUs, else CPU
    # Training losses stay on the device and are read (logged) every this many steps.
    log_every_steps: int = 100
    # Refuse, before training, tables (embeddings + linear terms, their Adam slots and the
    # training snapshots) larger than this, naming the groups; 0: no limit.
    table_memory_budget_mb: float = 16384.0


@dataclasses.dataclass
class EarlyStoppingConfig:
    """Train up to `max_epochs`, checking validation AUC every epoch (or `every_steps` steps)."""
    max_epochs: int = 8
    patience: int = 2                    # checks without an improvement > min_delta before stopping
    min_delta: float = 0.0
    every_steps: int = 0                 # 0: check at the end of every epoch


@dataclasses.dataclass
class TicketConfig:
    """Iterative magnitude pruning with rewinding, one ticket per task."""
    tasks: List[str] = dataclasses.field(default_factory=list)   # empty: every task of the spec
    rounds: int = 4                      # pruning rounds after the dense round 0
    final_density: float = 0.2
    stopping: EarlyStoppingConfig = dataclasses.field(default_factory=EarlyStoppingConfig)
    # 0 rewinds to θ0. k > 0: the rewind point is θ0 after k steps of dense multi-task training
    # (every task steps on each batch); every task's search and MTL start from it.
    rewind_step: int = 0
    min_density: float = 0.0             # rounds sparser than this are not selectable
    max_density: float = 1.0             # rounds denser than this are not selectable
    selection_tolerance: float = 0.0     # metrics this close tie; ties go to the sparser mask
    # Take the masks the newest pushed model publishes instead of searching, while the spec,
    # model and ticket settings that searched them are unchanged (`modules/ticket_reuse.py`):
    # "latest"; "never"; or {max_age_spans: K}: only masks searched at most K spans before the
    # span read; "auto": "latest" when the data is in the spans layout, else "never"
    # (`Config.for_layout`). `lt4rec run --search-tickets` forces a search.
    reuse: Union[str, Dict[str, int]] = "auto"

    @property
    def keep_per_round(self):
        """Fraction of the remaining weights kept by each pruning round."""
        return self.final_density ** (1.0 / self.rounds)


@dataclasses.dataclass
class ExpertsConfig:
    """The experts of `mtl.architecture: mmoe` and `ple` (`modules.experts`)."""
    shared: int = 3                      # experts every task's gate mixes (MMoE: all of them)
    per_task: int = 1                    # PLE: each task's own experts at each level
    levels: int = 2                      # PLE: extraction levels (1: CGC)
    units: List[int] = dataclasses.field(default_factory=lambda: [256, 128])   # each expert
    tower_units: List[int] = dataclasses.field(default_factory=lambda: [64])   # each task's


@dataclasses.dataclass
class MTLConfig:
    """Masked multi-task training."""
    # Each task stops stepping once its validation AUC stops improving; the weights kept are
    # those of the check with the best mean validation AUC over the tasks.
    stopping: EarlyStoppingConfig = dataclasses.field(default_factory=EarlyStoppingConfig)
    schedule: str = "round_robin"        # or "proportional"
    # Proportional: each batch steps one task drawn with these relative weights (a task left
    # out weighs 1).
    task_probabilities: Dict[str, float] = dataclasses.field(default_factory=dict)
    # Each task has its own Adam, which is invariant to a constant scale of the gradient, so a
    # task's weight scales its learning rate (what a loss weight does under SGD); default 1.
    loss_weights: Dict[str, float] = dataclasses.field(default_factory=dict)
    # "lt4rec": one MLP, each task through its ticket (TicketSearch runs only for this one);
    # "shared_bottom": the same MLP shared whole (hard sharing); "mmoe" and "ple": experts and
    # a softmax gate per task (`experts`).
    architecture: str = "lt4rec"
    experts: ExpertsConfig = dataclasses.field(default_factory=ExpertsConfig)
    # Products (`spec.products`) whose last task trains through the product on the product's
    # rows (ESMM's entire-space loss; `[ctcvr]`: CVR through P(click and conversion) = ctr x
    # cvr on every impression). The other factors' probabilities are constants in that step.
    product_losses: List[str] = dataclasses.field(default_factory=list)
    # A task whose MTL validation AUC ends below its own ticket's (trained alone; negative
    # transfer) is flagged in the summary; "serve_ticket" also serves that task from its
    # ticket's weights (the export then holds a second set of weights), "report" only flags it.
    negative_transfer: str = "serve_ticket"
    # "latest": MTL starts from the newest pushed model (`modules/warm_start.py`: its weights,
    # embedding rows remapped by vocabulary string; a first run, with nothing pushed, starts
    # cold); "off": from the seeded initialisation (θ0 for lt4rec); "auto": "latest" when the
    # data is in the spans layout (each run a day), else "off" (`Config.for_layout`).
    warm_start: str = "auto"


@dataclasses.dataclass
class GateConfig:
    """One output's gate; None: the `evaluation` default."""
    auc_lower_bound: Optional[float] = None
    max_auc_regression: Optional[float] = None


@dataclasses.dataclass
class EvalGateConfig:
    """Evaluator thresholds that decide the blessing (and so the push). Kept out of `spec`, which
    the trainers read, so a gate change re-runs only the Evaluator."""
    auc_lower_bound: float = 0.55        # every task's gate
    max_auc_regression: float = 0.01     # vs. the latest blessed model
    # Per task (overriding the two above) or per product (which is gated only when listed here).
    gates: Dict[str, GateConfig] = dataclasses.field(default_factory=dict)
    slice_features: List[str] = dataclasses.field(
        default_factory=lambda: _lt4rec("evaluation", "slice_features"))


ANOMALY_CLASSES = ("new_column", "missing_column", "wrong_type", "out_of_domain",
                   "missing_values", "drift", "skew", "other")


@dataclasses.dataclass
class ChecksConfig:
    """Data checks before Transform: which records are dropped, which anomalies stop the day."""
    # ExampleGen drops records that break the schema's per-value constraints (a required column
    # missing, another type, a number outside its domain, ...) and counts them per reason; above
    # this share of a split's records the day stops, naming each reason.
    max_dropped_fraction: float = 0.05
    # What the validator does with each class of the statistics' anomalies: "warn" (logged, in
    # the summary; the run goes on) or "block" (the run stops, naming the feature). "other":
    # every anomaly of no listed class.
    anomalies: Dict[str, str] = dataclasses.field(default_factory=lambda: {
        "new_column": "warn", "missing_column": "block", "wrong_type": "block",
        "out_of_domain": "warn", "missing_values": "warn", "drift": "block", "skew": "warn",
        "other": "block"})
    # Drift (spans layout): this span's train split against the newest earlier span's the
    # validator passed, per feature {name: threshold}: TFDV's L-infinity distance for string
    # (and categorical int) features, Jensen-Shannon divergence for numeric ones. Empty: off.
    drift: Dict[str, float] = dataclasses.field(default_factory=dict)
    # Skew: the train split against logged serving requests (gzip TFRecords of tf.Example, a
    # directory or glob), per feature {name: threshold}, measured as for drift.
    skew: Dict[str, float] = dataclasses.field(default_factory=dict)
    serving_logs: str = ""


@dataclasses.dataclass
class KubeflowConfig:
    """Compiling and submitting the pipeline to Kubeflow Pipelines 2.x (`kubeflow/`)."""
    image: str = "lt4rec-tfx:latest"     # built from kubeflow/Dockerfile; runs every component
    pipeline_root: str = "gs://your-bucket/lt4rec/root"
    data_root: str = "gs://your-bucket/lt4rec/data"
    serving_dir: str = "gs://your-bucket/lt4rec/serving"
    # Each passed span's train statistics, for the next span's drift check (`checks.drift`).
    statistics_dir: str = "gs://your-bucket/lt4rec/statistics"
    schema_path: str = "/pipeline/schema/schema.pbtxt"   # inside the image (kubeflow/Dockerfile)
    trainer_gpus: int = 1                # GPUs requested by TicketSearch and MTLTrainer only
    # The accelerator name: the Kubernetes resource on open-source KFP ("nvidia.com/gpu"), the
    # accelerator type on Vertex AI Pipelines (e.g. "NVIDIA_TESLA_T4").
    gpu_type: str = "nvidia.com/gpu"
    # Open-source KFP only: where the trainer pods may run (the package's Kubernetes platform
    # spec), e.g. {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"} and
    # [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}].
    gpu_node_selector: Dict[str, str] = dataclasses.field(default_factory=dict)
    gpu_tolerations: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    # Pod CPU (cores) and memory (GB) requests and limits per component id ("default": every
    # other component); a key left out is not set. Sized for a 10M-100M-row day: the trainers
    # stream their data, so their memory follows the tables (see the run's table log), not rows.
    resources: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=lambda: {
        "default": {"cpu_request": 1, "memory_request": 4, "memory_limit": 8},
        "StatisticsGen": {"cpu_request": 4, "memory_request": 8, "memory_limit": 16},
        "Transform": {"cpu_request": 8, "memory_request": 16, "memory_limit": 32},
        "TicketSearch": {"cpu_request": 8, "memory_request": 16, "memory_limit": 32},
        "MTLTrainer": {"cpu_request": 8, "memory_request": 16, "memory_limit": 32},
        "Evaluator": {"cpu_request": 8, "memory_request": 16, "memory_limit": 32}})
    endpoint: str = ""                   # Kubeflow Pipelines API, e.g. http://localhost:8080
    namespace: str = "kubeflow"
    experiment: str = "lt4rec"
    beam_pipeline_args: List[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=multi_processing",
                                 "--direct_num_workers=0"])
    # For s3:// and minio:// locations (modules/filesystems.py): the S3-compatible endpoint
    # (e.g. "http://minio-service.kubeflow:9000", KFP's own MinIO; empty: AWS S3), its region,
    # and the Kubernetes secret whose keys become every pod's AWS credentials (KFP's MinIO keeps
    # them in "mlpipeline-minio-artifact"; empty: the pods' own, e.g. an IAM role).
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_secret: str = ""
    s3_secret_keys: Dict[str, str] = dataclasses.field(default_factory=lambda: {
        "accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"})
    # Push gate: before a push, the InfraValidator starts a TF Serving pod of this image and tag
    # on the candidate (staged into it by our image, so any store works), waits up to
    # `infra_validation_seconds` for it to load, and scores a few eval examples through it
    # (components/infra_validator). The pod runs as `serving_service_account` (empty: the
    # pipeline's own); the pipeline's account needs the right to create pods.
    infra_validation: bool = True
    serving_image: str = "tensorflow/serving"
    serving_tag: str = "2.16.1"
    serving_service_account: str = ""
    infra_validation_seconds: int = 600


@dataclasses.dataclass
class Config:
    """The whole pipeline configuration."""
    pipeline_name: str = "lt4rec"
    spec: Spec = dataclasses.field(
        default_factory=lambda: _build(Spec, _lt4rec("spec"), "spec."))
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    vocab: VocabConfig = dataclasses.field(default_factory=VocabConfig)
    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    ticket: TicketConfig = dataclasses.field(default_factory=TicketConfig)
    mtl: MTLConfig = dataclasses.field(default_factory=MTLConfig)
    evaluation: EvalGateConfig = dataclasses.field(default_factory=EvalGateConfig)
    checks: ChecksConfig = dataclasses.field(default_factory=ChecksConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)
    beam_pipeline_args: List[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=multi_processing",
                                 "--direct_num_workers=0"])

    def to_json(self, sections=None):
        """Serialise to a JSON string; with `sections`, only those (the rest read as defaults).

        Components get only the sections they use, so that changing, say, an evaluation gate does
        not change the trainers' execution properties and TFX's cache still serves them.
        """
        values = dataclasses.asdict(self)
        if sections is not None:
            values = {name: values[name] for name in sections}
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_dict(cls, values, sections=None):
        """Build and validate a Config from a (possibly partial) nested dict. A `spec` without
        `features` overlays the shipped LT4REC spec (a list it gives replaces that list whole);
        a `spec` with `features` describes other data and stands alone: its lists default to
        empty, and so do the settings that name LT4REC columns (`data.split_key`,
        `evaluation.slice_features`). `sections`: as for `validate`."""
        values = values or {}
        own = isinstance(values.get("spec"), dict) and "features" in values["spec"]
        base = {"spec": {}, "data": {"split_key": ""}, "evaluation": {"slice_features": []}} \
            if own else {"spec": _lt4rec("spec")}
        config = _build(cls, _merge(base, values), "")
        config.validate(sections)
        return config

    @classmethod
    def from_json(cls, text):
        """Inverse of `to_json` (of all sections, or of some: see `validate`)."""
        values = json.loads(text)
        return cls.from_dict(values, sections=set(values))

    @classmethod
    def load(cls, path=None, overrides=None, spec_path=None):
        """Defaults, overlaid with a spec file (a config file describing the data: its `spec`,
        and the `data` / `evaluation` settings that name its columns), then a JSON/YAML config
        file, then a dict of overrides."""
        values = {}
        for name, file in (("spec", spec_path), ("config", path)):
            if file:
                if not os.path.isfile(file):
                    raise ConfigError(f"{name} file not found: {file}")
                with open(file, encoding="utf-8") as f:
                    values = _merge(values, _parse(file, f.read()))
        return cls.from_dict(_merge(values, overrides or {}))

    def for_layout(self, spans_layout):
        """This config with the daily settings left at "auto" decided for the data's layout: a
        run on the spans layout is a day that goes on from the last push (`mtl.warm_start:
        latest`, `ticket.reuse: latest`); a run on a flat root starts from scratch (`off`,
        `never`), so rerunning it changes nothing TFX's cache would not."""
        mtl = dataclasses.replace(self.mtl, warm_start=(
            "latest" if spans_layout else "off") if self.mtl.warm_start == "auto"
            else self.mtl.warm_start)
        ticket = dataclasses.replace(self.ticket, reuse=(
            "latest" if spans_layout else "never") if self.ticket.reuse == "auto"
            else self.ticket.reuse)
        return dataclasses.replace(self, mtl=mtl, ticket=ticket)

    def searches_tickets(self):
        """Whether the architecture trains through tickets (TicketSearch runs only then)."""
        return self.mtl.architecture == "lt4rec"

    def ticket_tasks(self):
        """The tasks a ticket is searched for: `ticket.tasks`, or every task of the spec."""
        return list(self.ticket.tasks) or self.spec.task_names()

    def gate(self, name):
        """(AUC lower bound, allowed AUC regression) of output `name`; None if it is not gated
        (a product without an `evaluation.gates` entry)."""
        own = self.evaluation.gates.get(name)
        if own is None and name not in self.spec.task_names():
            return None
        own = own or GateConfig()
        return tuple(default if value is None else value for value, default in (
            (own.auc_lower_bound, self.evaluation.auc_lower_bound),
            (own.max_auc_regression, self.evaluation.max_auc_regression)))

    def validate(self, sections=None):
        """Raise ConfigError naming the first invalid field.

        With `sections` (those a component's `to_json(sections)` carries), settings of the other
        sections are defaults its code never reads, so they are not checked against the spec.
        """
        def given(section):
            return sections is None or section in sections

        _check(0 < self.ticket.final_density <= 1, "ticket.final_density",
               self.ticket.final_density, "must be in (0, 1]")
        _check(0 <= self.ticket.min_density <= 1, "ticket.min_density",
               self.ticket.min_density, "must be in [0, 1]")
        _check(0 < self.ticket.max_density <= 1, "ticket.max_density",
               self.ticket.max_density, "must be in (0, 1]")
        _check(self.ticket.min_density <= self.ticket.max_density, "ticket.min_density",
               self.ticket.min_density, "must not exceed ticket.max_density")
        for name in ("ticket.rounds", "ticket.stopping.max_epochs", "ticket.stopping.patience",
                     "mtl.stopping.max_epochs", "mtl.stopping.patience", "model.batch_size",
                     "model.eval_batch_size", "model.embedding_dim", "data.max_list_length",
                     "data.synthetic_rows", "model.log_every_steps", "input.shuffle_buffer",
                     "input.interleave_files", "input.read_buffer_mb"):
            value = _field(self, name)
            _check(_is_int(value) and value > 0, name, value, "must be a positive integer")
        for name in ("ticket.stopping", "mtl.stopping"):
            stopping = _field(self, name)
            _check(_is_int(stopping.every_steps) and stopping.every_steps >= 0,
                   f"{name}.every_steps", stopping.every_steps, "must be an integer >= 0")
            _check(stopping.min_delta >= 0, f"{name}.min_delta", stopping.min_delta,
                   "must be >= 0")
        _check(0 <= self.model.dropout < 1, "model.dropout", self.model.dropout,
               "must be in [0, 1)")
        _check(self.model.table_memory_budget_mb >= 0, "model.table_memory_budget_mb",
               self.model.table_memory_budget_mb, "must be >= 0 (0: no limit)")
        _check(self.model.embedding_l2 >= 0, "model.embedding_l2", self.model.embedding_l2,
               "must be >= 0")
        _check(self.ticket.rewind_step >= 0, "ticket.rewind_step", self.ticket.rewind_step,
               "must be >= 0")
        _check(self.model.hidden_units and all(u > 0 for u in self.model.hidden_units),
               "model.hidden_units", self.model.hidden_units, "must be positive layer widths")
        _check(self.model.learning_rate > 0, "model.learning_rate", self.model.learning_rate,
               "must be > 0")
        _check(self.mtl.schedule in ("round_robin", "proportional"), "mtl.schedule",
               self.mtl.schedule, "must be 'round_robin' or 'proportional'")
        _check(self.data.split_mode in ("auto", "given", "hash"), "data.split_mode",
               self.data.split_mode, "must be 'auto', 'given' or 'hash'")
        _check(self.data.layout in ("auto", "spans", "flat"), "data.layout",
               self.data.layout, "must be 'auto', 'spans' or 'flat'")
        _check(_is_int(self.data.window_spans) and self.data.window_spans >= 1,
               "data.window_spans", self.data.window_spans, "must be an integer >= 1")
        _check(isinstance(self.kubeflow.trainer_gpus, int) and self.kubeflow.trainer_gpus >= 0,
               "kubeflow.trainer_gpus", self.kubeflow.trainer_gpus, "must be an integer >= 0")
        _check(_is_int(self.kubeflow.infra_validation_seconds) and
               self.kubeflow.infra_validation_seconds >= 1, "kubeflow.infra_validation_seconds",
               self.kubeflow.infra_validation_seconds, "must be an integer >= 1")
        for toleration in self.kubeflow.gpu_tolerations:
            _check(isinstance(toleration, dict) and set(toleration) <= _TOLERATION_FIELDS,
                   "kubeflow.gpu_tolerations", toleration,
                   f"must be a mapping with fields among {sorted(_TOLERATION_FIELDS)}")
        for component, resources in self.kubeflow.resources.items():
            where = f"kubeflow.resources.{component}"
            _check(set(resources) <= set(RESOURCE_FIELDS), where, resources,
                   f"must only set {list(RESOURCE_FIELDS)}")
            for key, value in resources.items():
                _check(value > 0, f"{where}.{key}", value, "must be > 0 (cores or GB)")
            for kind in ("cpu", "memory"):
                request, limit = resources.get(f"{kind}_request"), resources.get(f"{kind}_limit")
                _check(request is None or limit is None or request <= limit,
                       f"{where}.{kind}_request", request, f"must not exceed {kind}_limit {limit}")
        _check(self.mtl.architecture in ARCHITECTURES, "mtl.architecture",
               self.mtl.architecture, f"must be one of {list(ARCHITECTURES)}")
        experts = self.mtl.experts
        for field in ("shared", "per_task", "levels"):
            _check(_is_int(getattr(experts, field)) and getattr(experts, field) >= 0,
                   f"mtl.experts.{field}", getattr(experts, field), "must be an integer >= 0")
        _check(experts.levels >= 1, "mtl.experts.levels", experts.levels, "must be >= 1")
        _check(experts.shared + (experts.per_task if self.mtl.architecture == "ple" else 0) >= 1,
               "mtl.experts.shared", experts.shared, "leaves a gate with no expert to mix")
        for field in ("units", "tower_units"):
            units = getattr(experts, field)
            _check(all(_is_int(u) and u > 0 for u in units) and (units or field != "units"),
                   f"mtl.experts.{field}", units, "must be positive layer widths")
        products = {p.name: p.tasks for p in self.spec.products}
        for name in self.mtl.product_losses if given("spec") else []:
            _check(name in products, "mtl.product_losses", name,
                   f"unknown product; products: {sorted(products)}")
        lasts = [products[n][-1] for n in self.mtl.product_losses if n in products]
        _check(len(set(lasts)) == len(lasts), "mtl.product_losses", self.mtl.product_losses,
               "trains one task through two products")
        _check(self.mtl.negative_transfer in ("serve_ticket", "report"), "mtl.negative_transfer",
               self.mtl.negative_transfer, "must be 'serve_ticket' or 'report'")
        _check(self.mtl.warm_start in ("auto", "off", "latest"), "mtl.warm_start",
               self.mtl.warm_start, "must be 'auto', 'off' or 'latest'")
        reuse = self.ticket.reuse
        _check(reuse in ("auto", "latest", "never") or (
            isinstance(reuse, dict) and set(reuse) == {"max_age_spans"}
            and _is_int(reuse["max_age_spans"]) and reuse["max_age_spans"] >= 0),
            "ticket.reuse", reuse,
            "must be 'auto', 'latest', 'never' or {max_age_spans: K >= 0}")
        self.spec.validate()
        tasks = self.spec.task_names()
        _check(len(set(self.ticket.tasks)) == len(self.ticket.tasks), "ticket.tasks",
               self.ticket.tasks, "must be a list without repeats (empty: every task)")
        for task in self.ticket.tasks if given("spec") else []:
            _check(task in tasks, "ticket.tasks", task, f"unknown task; tasks: {tasks}")
        for field in ("loss_weights", "task_probabilities"):
            for task, weight in getattr(self.mtl, field).items():
                _check(not given("spec") or task in tasks, f"mtl.{field}", task,
                       f"unknown task; tasks: {tasks}")
                _check(weight >= 0, f"mtl.{field}.{task}", weight, "must be >= 0")
        vocab = self.vocab
        _check(vocab.top_k is None or (_is_int(vocab.top_k) and vocab.top_k > 0), "vocab.top_k",
               vocab.top_k, "must be a positive integer or null (no limit)")
        _check(_is_int(vocab.frequency_threshold) and vocab.frequency_threshold >= 1,
               "vocab.frequency_threshold", vocab.frequency_threshold, "must be an integer >= 1")
        _check(_is_int(vocab.num_oov_buckets) and vocab.num_oov_buckets >= 1,
               "vocab.num_oov_buckets", vocab.num_oov_buckets,
               "must be an integer >= 1 (unseen values need an id)")
        _check(all(isinstance(d, str) and d for d in self.model.devices), "model.devices",
               self.model.devices, "must be a list of device names such as '/gpu:0'")
        _check(sorted(self.data.split_buckets) == sorted(SPLITS) and
               all(_is_int(b) and b > 0 for b in self.data.split_buckets.values()),
               "data.split_buckets", self.data.split_buckets,
               f"must give a positive hash-bucket count to each of {list(SPLITS)}")
        _check(self.data.validation_from in ("auto", "directory", "train"),
               "data.validation_from", self.data.validation_from,
               "must be 'auto', 'directory' or 'train'")
        _check(0 < self.data.validation_share < 1, "data.validation_share",
               self.data.validation_share, "must be in (0, 1)")
        _check(_is_int(self.data.validation_min_class_rows) and
               self.data.validation_min_class_rows >= 0, "data.validation_min_class_rows",
               self.data.validation_min_class_rows, "must be an integer >= 0 (0: off)")
        _check(0 < self.data.validation_max_share < 1, "data.validation_max_share",
               self.data.validation_max_share, "must be in (0, 1)")
        keyed = self.spec.fields() + self.spec.keys
        _check(not given("data") or self.data.split_key in [""] + keyed, "data.split_key",
               self.data.split_key, f"must be empty (hash the whole record) or a feature or "
               f"key column of the spec {keyed} (not a label or score: that would split by "
               f"outcome)")
        gates = {"": self.evaluation, **{f"gates.{name}": gate
                                         for name, gate in self.evaluation.gates.items()}}
        for where, gate in gates.items():
            prefix = f"evaluation.{where}." if where else "evaluation."
            _check(gate.auc_lower_bound is None or 0 <= gate.auc_lower_bound <= 1,
                   f"{prefix}auc_lower_bound", gate.auc_lower_bound, "must be in [0, 1]")
            _check(gate.max_auc_regression is None or gate.max_auc_regression >= 0,
                   f"{prefix}max_auc_regression", gate.max_auc_regression, "must be >= 0")
        outputs = self.spec.output_names()
        for name in self.evaluation.gates if given("evaluation") and given("spec") else []:
            _check(name in outputs, "evaluation.gates", name,
                   f"is not a task or product; outputs: {outputs}")
        _check(0 <= self.checks.max_dropped_fraction < 1, "checks.max_dropped_fraction",
               self.checks.max_dropped_fraction, "must be in [0, 1)")
        for name, action in self.checks.anomalies.items():
            _check(name in ANOMALY_CLASSES, "checks.anomalies", name,
                   f"unknown anomaly class; classes: {list(ANOMALY_CLASSES)}")
            _check(action in ("warn", "block"), f"checks.anomalies.{name}", action,
                   "must be 'warn' or 'block'")
        for kind in ("drift", "skew"):
            for name, threshold in getattr(self.checks, kind).items():
                _check(threshold > 0, f"checks.{kind}.{name}", threshold,
                       "must be a distance > 0")
        _check(bool(self.checks.skew) == bool(self.checks.serving_logs), "checks.serving_logs",
               self.checks.serving_logs, "and checks.skew (the features to compare) go together")
        _check(self.ticket.selection_tolerance >= 0, "ticket.selection_tolerance",
               self.ticket.selection_tolerance, "must be >= 0")
        for name in self.evaluation.slice_features if given("evaluation") else []:
            _check(name in keyed, "evaluation.slice_features", name,
                   "is not a feature or key column of the spec")


def _parse(path, text):
    """The mapping in a JSON or YAML config file's text; ConfigError naming the file if none."""
    import yaml
    try:
        values = (yaml.safe_load(text) or {}) if path.endswith((".yaml", ".yml")) \
            else json.loads(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"invalid configuration: cannot parse {path}: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"invalid configuration: {path} must hold a mapping, not "
                          f"{type(values).__name__}")
    return values


def _field(config, dotted):
    """The value at a dotted path such as "ticket.stopping.patience"."""
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


# Settings that moved: {old dotted name: where they are now}.
# (The LT4REC settings the task spec replaced are listed in `modules/lt4rec.yaml`.)
_MOVED = {"vocab.per_group": "spec.groups (one entry per group: top_k, frequency_threshold, "
                             "num_oov_buckets, embedding_dim)",
          "model.focal_alpha": "spec.tasks: a focal task's `focal_alpha`",
          "model.focal_gamma": "spec.tasks: a focal task's `focal_gamma`",
          "mtl.masks": "mtl.architecture (tickets: lt4rec; ones: shared_bottom)",
          **_lt4rec("moved")}
ARCHITECTURES = ("lt4rec", "shared_bottom", "mmoe", "ple")
RESOURCE_FIELDS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
_TOLERATION_FIELDS = {"key", "operator", "value", "effect", "tolerationSeconds"}


def _merge(base, over):
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls, values, prefix):
    if not isinstance(values, dict):
        raise ConfigError(f"invalid configuration: {prefix or 'config'} must be a mapping")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    for key in unknown:
        if prefix + key in _MOVED:
            raise ConfigError(f"invalid configuration: {prefix}{key} moved to "
                              f"{_MOVED[prefix + key]}")
    if unknown:
        raise ConfigError(f"invalid configuration: unknown key(s) {unknown} in "
                          f"{prefix or 'config'}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        field_type = known[name].type
        origin, args = typing.get_origin(field_type), typing.get_args(field_type)
        if dataclasses.is_dataclass(field_type):
            kwargs[name] = _build(field_type, value, f"{prefix}{name}.")
        elif origin is list and dataclasses.is_dataclass(args[0]):
            _check(isinstance(value, list), prefix + name, value, "must be a list")
            kwargs[name] = [_build(args[0], item, f"{prefix}{name}[{i}].")
                            for i, item in enumerate(value)]
        elif origin is dict and dataclasses.is_dataclass(args[1]):
            _check(isinstance(value, dict) and all(isinstance(k, str) for k in value),
                   prefix + name, value, "must be a mapping from names")
            kwargs[name] = {key: _build(args[1], item, f"{prefix}{name}.{key}.")
                            for key, item in value.items()}
        else:
            _check(_has_type(value, field_type), prefix + name, value,
                   f"must be of type {_type_name(field_type)}")
            kwargs[name] = value
    return cls(**kwargs)


def _has_type(value, field_type):
    """Whether `value` (parsed JSON/YAML) matches a field annotation; bools are not numbers."""
    origin, args = typing.get_origin(field_type), typing.get_args(field_type)
    if origin is typing.Union:
        return any(_has_type(value, arg) for arg in args)
    if field_type is type(None):
        return value is None
    if field_type in (int, float) and isinstance(value, bool):
        return False
    if field_type is float:
        return isinstance(value, (int, float))
    if origin is list:
        return isinstance(value, list) and all(_has_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _has_type(k, args[0]) and _has_type(v, args[1]) for k, v in value.items())
    return isinstance(value, origin or field_type)


def _type_name(field_type):
    return getattr(field_type, "__name__", None) if not typing.get_args(field_type) \
        else str(field_type).replace("typing.", "")
