"""The one fit loop, run directories, checkpoints, loggers and evaluation (DESIGN.md, "train/")."""

from offmarl.core.files import atomic_torch_save, atomic_write_json
from offmarl.core.seeding import global_rng_state, seed_everything, set_global_rng_state
from offmarl.train.checkpoint import load_checkpoint, save_checkpoint
from offmarl.train.evaluate import evaluate_policy, write_eval_json
from offmarl.train.loop import TrainConfig, fit
from offmarl.train.run_dir import RunPaths, algo_label, default_run_dir, resolve_dataset

__all__ = [
    "TrainConfig", "fit", "seed_everything", "global_rng_state", "set_global_rng_state",
    "atomic_torch_save", "atomic_write_json", "save_checkpoint", "load_checkpoint",
    "evaluate_policy", "write_eval_json", "RunPaths", "algo_label", "default_run_dir", "resolve_dataset",
]
