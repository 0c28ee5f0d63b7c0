"""Upload and run, or schedule, a compiled lt4rec spec on a Kubeflow Pipelines 2.x endpoint."""
import contextlib
import json
import logging
import os
import tempfile

import kfp
import urllib3
import yaml

from kubeflow.runner import TRAINERS, uses_s3
from modules.config import ConfigError
from modules.evaluation import GATE_PARAMETERS, gated_config

SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"   # the KFP SDK's in-pod default


def platform_spec(pipeline_spec, kubeflow_config):
    """The Kubernetes platform spec of the package, or None when nothing needs one: the trainer
    pods placed on GPU nodes, and every pod's S3 credentials from `kubeflow.s3_secret`.

    Node selectors, tolerations and secrets are not part of a PipelineSpec: the open-source
    backend reads them from `platforms.kubernetes.deploymentSpec.executors[<executor label>]`
    (driver/driver.go `extendPodSpecPatch`, driver/k8s.go for `secretAsEnv`); Vertex AI
    Pipelines ignores this document and places GPU pods itself.
    """
    kf = kubeflow_config
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    executors = {}

    def executor(name):
        label = pipeline_spec["components"][tasks[name]["componentRef"]["name"]]["executorLabel"]
        return executors.setdefault(label, {})

    if kf.trainer_gpus:
        for name in (n for n in TRAINERS if n in tasks):     # no TicketSearch without tickets
            if kf.gpu_node_selector:
                executor(name)["nodeSelector"] = {"labels": dict(kf.gpu_node_selector)}
            if kf.gpu_tolerations:
                executor(name)["tolerations"] = [dict(t) for t in kf.gpu_tolerations]
    if kf.s3_secret and uses_s3(kf):
        for name in sorted(tasks):
            executor(name)["secretAsEnv"] = [{
                "secretName": kf.s3_secret,
                "keyToEnv": [{"secretKey": key, "envVar": env}
                             for key, env in sorted(kf.s3_secret_keys.items())]}]
    if not executors:
        return None
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def read_pipeline_spec(spec_path):
    """The PipelineSpec (dict) of a compiled spec file (TFX's job JSON, or a spec itself)."""
    require_spec(spec_path)
    with open(spec_path, encoding="utf-8") as f:
        job = json.load(f)
    return job.get("pipelineSpec", job)


def parse_assignments(assignments):
    """{NAME: VALUE} of command-line `NAME=VALUE` strings; ConfigError for one without `=`."""
    values = {}
    for assignment in assignments or []:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise ConfigError(f"invalid run parameter {assignment!r}: expected NAME=VALUE")
        values[name] = value
    return values


_CONVERSIONS = {"NUMBER_INTEGER": (int, "an integer"), "NUMBER_DOUBLE": (float, "a number"),
                "STRING": (str, "a string")}


def run_arguments(pipeline_spec, values):
    """The run parameter values (name -> value, strings converted to the declared type) a run of
    `pipeline_spec` sends; ConfigError naming a parameter the spec does not declare (listing
    those it does), a value of the wrong type, a negative span, or gate values the compiled
    Evaluator would refuse."""
    declared = pipeline_spec["root"].get("inputDefinitions", {}).get("parameters", {})
    arguments = {}
    for name, value in (values or {}).items():
        if name not in declared:
            known = "; ".join(f"{n} ({p.get('description', p.get('parameterType'))}, default "
                              f"{p.get('defaultValue')!r})" for n, p in sorted(declared.items()))
            raise ConfigError(f"invalid run parameter {name!r}: the pipeline declares "
                              f"{known or 'none'}")
        convert, kind = _CONVERSIONS[declared[name]["parameterType"]]
        try:
            arguments[name] = convert(value)
        except ValueError:
            raise ConfigError(f"invalid run parameter {name}={value!r}: must be {kind}") from None
    if arguments.get("span", 0) < 0:
        raise ConfigError(f"invalid run parameter span={arguments['span']}: a span number "
                          "(>= 1), or 0 for the newest")
    if set(arguments) & set(GATE_PARAMETERS):
        evaluator = pipeline_spec["root"]["dag"]["tasks"]["Evaluator"]["inputs"]["parameters"]
        gated_config(evaluator["config_json"]["runtimeValue"]["constant"],
                     **{name: arguments.get(name) for name in GATE_PARAMETERS})
    return arguments


def cached_steps(pipeline_spec, enable_caching=None):
    """Names of the tasks KFP may serve from its cache: the compiled `cachingOptions`, unless
    `enable_caching` overrides every task (as the kfp client does)."""
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    if enable_caching is not None:
        return sorted(tasks) if enable_caching else []
    return sorted(name for name, task in tasks.items()
                  if task.get("cachingOptions", {}).get("enableCache"))


def kfp_package(spec_path, out_dir, kubeflow_config):
    """Write the YAML package kfp uploads: the PipelineSpec of a TFX-compiled job JSON, then the
    platform spec (if any). Returns (path, the pipeline root compiled into the job)."""
    with open(spec_path, encoding="utf-8") as f:
        job = json.load(f)
    pipeline_spec = job.get("pipelineSpec", job)
    documents = [pipeline_spec]
    platform = platform_spec(pipeline_spec, kubeflow_config)
    if platform:
        documents.append(platform)
    path = os.path.join(out_dir, "pipeline.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(documents, f, sort_keys=False)
    return path, job.get("runtimeConfig", {}).get("gcsOutputDirectory")


def connect(kubeflow_config, token_file=None, cookies_file=None, environ=None):
    """A kfp.Client of `kubeflow.endpoint` in `kubeflow.namespace` (a multi-user install: your
    profile namespace), with the caller's identity:

    - a bearer token read from `token_file` at every request, else from
      `$KF_PIPELINES_SA_TOKEN_PATH` or `/var/run/secrets/kubeflow/pipelines/token` when that file
      exists (a pod's projected ServiceAccount token, as the KFP SDK reads it);
    - the cookies in `cookies_file` (one Cookie header, e.g. `authservice_session=...` or
      `oauth2_proxy_kubeflow=...` from a logged-in browser, for a Dex / oauth2-proxy front);
    - neither: no credentials (a single-user install, or a port-forward to the API server).
    """
    kf = kubeflow_config
    environ = os.environ if environ is None else environ
    if not kf.endpoint:
        raise ConfigError("invalid configuration: kubeflow.endpoint is not set "
                          "(use --endpoint or the config file)")
    from kfp.client import set_volume_credentials
    token_file = token_file or environ.get("KF_PIPELINES_SA_TOKEN_PATH") or (
        SA_TOKEN_PATH if os.path.isfile(SA_TOKEN_PATH) else None)
    cookies = None
    for path in filter(None, (token_file, cookies_file)):
        if not os.path.isfile(path):
            raise ConfigError(f"invalid configuration: credentials file not found: {path}")
    if cookies_file:
        with open(cookies_file, encoding="utf-8") as f:
            cookies = f.read().strip()
    credentials = set_volume_credentials.ServiceAccountTokenVolumeCredentials(token_file) \
        if token_file else None
    with _reachable(kf):
        return kfp.Client(host=kf.endpoint, namespace=kf.namespace, cookies=cookies,
                          credentials=credentials)


@contextlib.contextmanager
def _reachable(kf):
    """Report a connection failure to `kubeflow.endpoint` as a ConfigError naming it."""
    try:
        yield
    except urllib3.exceptions.HTTPError as error:
        raise ConfigError(f"invalid configuration: Kubeflow Pipelines not reachable at "
                          f"kubeflow.endpoint {kf.endpoint} ({error})") from error


def require_spec(spec_path):
    """ConfigError unless the compiled spec `spec_path` exists."""
    if not os.path.isfile(spec_path):
        raise ConfigError(f"invalid configuration: pipeline spec not found: {spec_path} "
                          "(compile it first)")


@contextlib.contextmanager
def _package(spec_path, kf, enable_caching):
    """(package path, pipeline root) of `spec_path` for an upload, in a temporary directory;
    logs the steps KFP may serve from its cache."""
    require_spec(spec_path)
    with tempfile.TemporaryDirectory() as tmp:
        package, compiled_root = kfp_package(spec_path, tmp, kf)
        with open(package, encoding="utf-8") as f:
            steps = cached_steps(next(yaml.safe_load_all(f)), enable_caching)
        logging.info("steps KFP may serve from its cache: %s", ", ".join(steps) or "none")
        yield package, kf.pipeline_root or compiled_root


def submit(spec_path, config, run_name=None, enable_caching=None, client=None,
           parameters=None):
    """Create a run of `spec_path` on `config.kubeflow.endpoint`; returns the run id.

    `parameters` sets run parameters ({name: value}, see `run_arguments`); the others keep
    their compiled defaults.
    The pipeline root is `kubeflow.pipeline_root` (else the one compiled into the spec).
    `enable_caching` None keeps the compiled per-step caching (ImportExampleGen, ImportSchemaGen
    and BaselineModel never cached); True would make the kfp client cache every step, stale
    examples included; False runs every step. `client`: `connect`'s (default: no credentials).
    """
    kf = config.kubeflow
    arguments = run_arguments(read_pipeline_spec(spec_path), parameters)
    client = client or connect(kf)
    with _package(spec_path, kf, enable_caching) as (package, pipeline_root), _reachable(kf):
        result = client.create_run_from_pipeline_package(
            package, arguments=arguments, run_name=run_name or config.pipeline_name,
            experiment_name=kf.experiment, namespace=kf.namespace,
            pipeline_root=pipeline_root, enable_caching=enable_caching)
    return result.run_id


def kfp_cron(expression):
    """A cron expression as KFP's scheduler reads it (six fields, seconds first): a standard
    five-field expression gets second 0; ConfigError for any other field count."""
    fields = (expression or "").split()
    if len(fields) not in (5, 6):
        raise ConfigError(f"invalid cron expression {expression!r}: five fields (minute hour "
                          "day-of-month month day-of-week) or six (seconds first)")
    return " ".join(["0"] * (len(fields) == 5) + fields)


def schedule(spec_path, config, cron=None, interval_seconds=None, name=None,
             enable_caching=None, client=None, parameters=None):
    """Create a recurring run of `spec_path`: every `cron` (five or six fields, in the
    scheduler's time zone) or every `interval_seconds`, with `parameters` as for `submit`;
    returns its id.

    Each run reads the newest span under the data root (ExampleGen's driver resolves it when the
    run starts). At most one run at a time, and no catch-up: runs missed while the schedule was
    paused or the cluster down are not made up (each would read the same newest span).
    """
    if (cron is None) == (interval_seconds is None):
        raise ConfigError("invalid configuration: give a cron expression or an interval "
                          "in seconds, not both")
    if interval_seconds is not None and interval_seconds <= 0:
        raise ConfigError(f"invalid interval: {interval_seconds} seconds (must be > 0)")
    cron = kfp_cron(cron) if cron is not None else None
    kf = config.kubeflow
    arguments = run_arguments(read_pipeline_spec(spec_path), parameters)
    if arguments.get("span"):
        raise ConfigError("invalid run parameter span for a recurring run: each run reads the "
                          "newest span (set a span for one run with submit)")
    client = client or connect(kf)
    with _package(spec_path, kf, enable_caching) as (package, pipeline_root), _reachable(kf):
        experiment = client.create_experiment(kf.experiment, namespace=kf.namespace)
        result = client.create_recurring_run(
            experiment.experiment_id, name or f"{config.pipeline_name}-daily",
            cron_expression=cron,
            interval_second=interval_seconds, max_concurrency=1, no_catchup=True,
            params=arguments,
            pipeline_package_path=package, pipeline_root=pipeline_root,
            enable_caching=enable_caching)
    return result.recurring_run_id
