"""The end-of-run summary: printed by `lt4rec run` and written to `<root>/summary.json`."""
import json
import os


def _uri(outputs, node, key):
    artifacts = outputs.get(node, {}).get(key, [])
    return artifacts[0].uri if artifacts else None


def build(outputs, layout, config):
    """Collect the run's results from its MLMD outputs and write `summary.json`."""
    transform_graph = _uri(outputs, "Transform", "transform_graph")
    result = {
        "transformed_examples": _uri(outputs, "Transform", "transformed_examples"),
        "vocabularies": transform_graph and os.path.join(transform_graph, "transform_fn", "assets"),
    }
    with open(layout.summary_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    os.replace(layout.summary_path + ".tmp", layout.summary_path)
    result["summary_path"] = layout.summary_path
    return result


def render(result):
    """Human-readable summary lines."""
    return "\n".join([
        "lt4rec run finished.",
        f"  transformed examples: {result['transformed_examples']}",
        f"  vocabularies:         {result['vocabularies']}",
        f"  summary:              {result['summary_path']}",
    ])
