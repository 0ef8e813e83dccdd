"""Lightning callbacks that `train.py` adds from config: model selection and the end-of-run report.

Both stay off the training loop's hot path: selection works on the validation outputs once per
validation epoch, the report draws its pictures after testing.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from lepton_cli.io import write_json_atomically
from lepton_cli.selection import Validator


class SelectionCallback(pl.Callback):
    """Scores each validation epoch with a `Validator` and logs it as `selection/score` (the
    metric the ModelCheckpoint monitors, so "best" is the validator's choice). Keeps the history,
    the validator's pick and, since the target test labels exist, the oracle's pick beside it."""

    def __init__(self, validator: Validator):
        self.validator = validator
        self.history: list[dict] = []
        self._outputs: dict[str, dict[str, list[torch.Tensor]]] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "val_splits"):
            datamodule.setup()
            self.validator.check(list(datamodule.val_splits))

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._outputs = {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, dict) or "logits" not in outputs:
            return
        from lepton_cli.methods.base import EVAL_DOMAINS

        split = self._outputs.setdefault(outputs.get("split") or EVAL_DOMAINS[dataloader_idx], {})
        for key in ("logits", "features", "labels"):
            split.setdefault(key, []).append(outputs[key].detach())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._outputs:
            return
        outputs = {name: {key: self._gather(pl_module, torch.cat(parts)) for key, parts in split.items()}
                   for name, split in self._outputs.items()}
        self._outputs = {}
        self.validator.check(list(outputs))
        score = self.validator.score(outputs)
        pl_module.log("selection/score", score, sync_dist=False)  # every rank scored the same gathered outputs
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, "score": score}
        if "target" in outputs:
            entry.update(target_metrics(outputs["target"]["logits"], outputs["target"]["labels"]))
        self.history = [e for e in self.history if e["epoch"] != entry["epoch"]] + [entry]

    def state_dict(self) -> dict:  # plain floats: resume keeps the history, weights_only loading still works
        return {"history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state.get("history", []))

    @staticmethod
    def _gather(pl_module: pl.LightningModule, tensor: torch.Tensor) -> torch.Tensor:
        from lepton_cli.distributed import all_gather_uneven

        return all_gather_uneven(pl_module, tensor).cpu()  # ranks may hold one image fewer each

    def summary(self) -> dict:
        """What metrics.json records: the validator's pick (`selection/score` for `lepton sweep
        --rank-by`; `selection/rank_score` is the same, negated when lower is better) and the oracle's."""
        validator = self.validator
        result: dict = {"selection/name": validator.name, "selection/mode": validator.mode}
        if validator.uses_target_labels:
            result["selection/note"] = "oracle (uses target labels)"
        if not self.history:
            return result
        chosen = self.history[0]
        for entry in self.history[1:]:
            if validator.better(entry["score"], chosen["score"]):
                chosen = entry
        result.update({"selection/score": chosen["score"],
                       "selection/rank_score": chosen["score"] if validator.mode == "max" else -chosen["score"],
                       "selection/epoch": chosen["epoch"], "selection/step": chosen["step"]})
        result.update({f"selection/{k}": v for k, v in chosen.items() if k.startswith("target/")})
        if "target/acc" in chosen:
            oracle = max(self.history, key=lambda e: e["target/acc"])  # first best, as ModelCheckpoint keeps it
            result.update({"oracle/epoch": oracle["epoch"],
                           **{f"oracle/{k}": v for k, v in oracle.items() if k.startswith("target/")}})
        result["selection/history"] = self.history
        return result


def target_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    from torchmetrics.functional.classification import multiclass_f1_score

    predictions = logits.argmax(1)
    return {"target/acc": float((predictions == labels).float().mean()),
            "target/f1_macro": float(multiclass_f1_score(predictions, labels, logits.shape[1], average="macro"))}


class ReportCallback(pl.Callback):
    """Pictures at the end of a run, in `<run>/report/`: learning curves (collected here, whatever
    the logger), and after testing the confusion matrix on the target test split and a t-SNE of
    source and target test features. `train.py` then writes `report.md` (lepton_cli/reporting/markdown.py).

    Per step it only adds the step's training losses (`last_losses`) to on-device sums (no host sync); all
    drawing happens in `on_test_end`, on rank 0.
    """

    def __init__(self, directory: str | Path, tsne_points: int = 1000):
        self.directory = Path(directory)
        self.tsne_points = tsne_points
        self.history: dict[int, dict] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def state_dict(self) -> dict:
        return {"history": [self.history[epoch] for epoch in sorted(self.history)]}

    def load_state_dict(self, state: dict) -> None:
        self.history = {entry["epoch"]: entry for entry in state.get("history", [])}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sums, self._count = {}, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        # Every step's terms (`AdaptationMethod.log_losses`): Lightning's logged values exist only at
        # the steps its loggers write.
        for name, value in (getattr(pl_module, "last_losses", None) or {}).items():
            key = f"train/{name}"
            self._sums[key] = self._sums.get(key, 0) + value.detach()
        self._count += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._count:
            entry = self.history.setdefault(trainer.current_epoch, {"epoch": trainer.current_epoch})
            entry.update({key: float(total) / self._count for key, total in self._sums.items()})

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        entry = self.history.setdefault(trainer.current_epoch, {"epoch": trainer.current_epoch})
        for key in ("oracle/target/acc", "source/acc", "source_val/acc", "selection/score"):
            if key in trainer.callback_metrics:
                entry[key] = float(trainer.callback_metrics[key])

    def on_test_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        from lepton_cli.reporting import plots

        self.directory.mkdir(parents=True, exist_ok=True)
        history = [self.history[epoch] for epoch in sorted(self.history)]
        write_json_atomically(self.directory / "history.json", history)
        plots.learning_curves(history, self.directory / plots.CURVES)
        datamodule = trainer.datamodule
        was_training = pl_module.training
        plots.model_pictures(pl_module.model, pl_module.augment["weak"].normalize,
                             {domain: datamodule.splits[f"{domain}_test"] for domain in ("source", "target")},
                             datamodule.classes, self.directory, self.tsne_points)
        pl_module.train(was_training)
