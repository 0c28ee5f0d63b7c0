"""PNG plots of ticket search results (matplotlib, no display needed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)


def pruning_curves(report, path):
    """Eval metric vs. density per task, with each task's chosen round marked."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for task, result in sorted(report["tasks"].items()):
        rounds = result["rounds"]
        ax.plot([r["density"] for r in rounds], [r["metric"] for r in rounds], marker="o",
                label=f"{task} ({result['metric_name']})")
        chosen = rounds[result["chosen_round"]]
        ax.scatter([chosen["density"]], [chosen["metric"]], s=160, facecolors="none",
                   edgecolors="black")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("density of the prunable MLP weights")
    ax.set_ylabel("eval metric")
    ax.set_title("Lottery-ticket search (circled: chosen round)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
