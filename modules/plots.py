"""PNG plots of ticket search results (matplotlib, no display needed)."""
import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import tensorflow as tf  # noqa: E402


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22")
SHARED_COLOR = "#9467bd"           # connections tasks share


def task_colors(tasks):
    """{task: colour}, by the tasks' order (sorted names: the same colour in every plot)."""
    return {task: PALETTE[i % len(PALETTE)] for i, task in enumerate(sorted(tasks))}


def draw_pruning_curves(ax, report):
    """Draw validation metric vs. density per task on `ax`, each task's chosen round circled."""
    colors = task_colors(report["tasks"])
    for task, result in sorted(report["tasks"].items()):
        rounds = result["rounds"]
        ax.plot([r["density"] for r in rounds], [r["metric"] for r in rounds], marker="o",
                color=colors[task], label=f"{task} ({result['metric_name']})")
        chosen = rounds[result["chosen_round"]]
        ax.scatter([chosen["density"]], [chosen["metric"]], s=160, facecolors="none",
                   edgecolors="black")
    densities = sorted({round(r["density"], 2) for result in report["tasks"].values()
                        for r in result["rounds"]})
    ax.set_xscale("log")
    ax.set_xticks(densities, [f"{d:.2f}" for d in densities])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.invert_xaxis()
    ax.set_xlabel("density of the prunable MLP weights")
    ax.set_ylabel("validation metric (selects the round)")
    ax.set_title("Lottery-ticket search (circled: chosen round)")
    ax.grid(True, alpha=0.3)
    ax.legend()


def pruning_curves(report, path):
    """Write the pruning curves of a ticket report to the PNG `path` (any filesystem TensorFlow
    opens: an artifact may live on an object store)."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    draw_pruning_curves(ax, report)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(image.getvalue())
