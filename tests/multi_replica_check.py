"""Run ticket search and MTL on toy data with one and with two replicas; print JSON results.

Run as a separate process (`python tests/multi_replica_check.py`): the CPU must be split into two
logical devices before TensorFlow initialises.
"""
import json
import os
import sys

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from modules import ticket_search  # noqa: E402
from conftest import small_config, toy_training_inputs  # noqa: E402
from modules import mtl  # noqa: E402
from modules import masks as masks_lib  # noqa: E402


def run(strategy, out_dir):
    inputs = toy_training_inputs(out_dir + "-data", (1200, 600, 600), strategy)
    # No dropout: one and two replicas draw different dropout masks (each replica runs its own
    # random op on its half of the batch), which this comparison would count as a difference.
    # One pruning round and batch 128 keep the (slow, per-step) MirroredStrategy run short.
    config = small_config(model={"batch_size": 128, "dropout": 0.0},
                          ticket={"rounds": 1})
    report = ticket_search.run_search(inputs, config, out_dir)
    _, trainer, _, fit = mtl.train(inputs, config, masks_lib.load(out_dir),
                                   ticket_search.start_prefix(out_dir))
    batch = next(iter(strategy.experimental_distribute_dataset(inputs.train.batches(128, seed=0))))
    per_replica = [int(v.shape[0]) for v in strategy.experimental_local_results(batch["label"])]
    return {"replicas": strategy.num_replicas_in_sync, "per_replica_batch": per_replica,
            "ticket_metrics": {t: r["chosen_metric"] for t, r in report["tasks"].items()},
            "rounds": {t: [x["metric"] for x in r["rounds"]] for t, r in report["tasks"].items()},
            "round_epochs": {t: [x["epochs_trained"] for x in r["rounds"]]
                             for t, r in report["tasks"].items()},
            "mtl": mtl.evaluate(trainer, inputs.evaluation),
            "mtl_epochs": fit.epochs_trained}


def main(out_root):
    one = run(tf.distribute.get_strategy(), os.path.join(out_root, "one"))
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), os.path.join(out_root, "two"))
    masks_one = masks_lib.load(os.path.join(out_root, "one"))
    masks_two = masks_lib.load(os.path.join(out_root, "two"))
    agreement = {t: float(np.mean(np.concatenate([(a == b).ravel() for a, b in zip(
        masks_one[t], masks_two[t])]))) for t in masks_one}
    print(json.dumps({"one": one, "two": two, "mask_agreement": agreement}))


if __name__ == "__main__":
    main(sys.argv[1])
