"""The pictures of a run: learning curves, target confusion matrix, t-SNE of the feature space.

matplotlib (Agg backend) and scikit-learn are imported inside the functions, so importing this
module costs nothing; each PNG is written to a temporary name and then renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

CURVES, CONFUSION, TSNE = "learning_curves.png", "confusion_matrix.png", "tsne.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    figure.tight_layout()
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(path)


def learning_curves(history: list[dict], path: Path) -> None:
    """Training losses (mean per epoch) and accuracies / selection score per epoch."""
    plt = _pyplot()
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [e["epoch"] for e in history]
    loss_keys = sorted({k for e in history for k in e if k.startswith("train/")})
    for key in loss_keys:
        points = [(e["epoch"], e[key]) for e in history if key in e]
        losses.plot(*zip(*points), marker="o", label=key.removeprefix("train/"))
    losses.set(title="training losses (mean per epoch)", xlabel="epoch", ylabel="loss")
    labels = {"oracle/target/acc": "target test acc (oracle: uses target labels)", "target/acc": "target test acc",
              "source/acc": "source test acc", "source_val/acc": "source val acc"}
    for key, label in labels.items():
        points = [(e["epoch"], e[key]) for e in history if key in e]
        if points:
            scores.plot(*zip(*points), marker="o", label=label)
    scores.set(title="accuracy per epoch", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for axes in (losses, scores):
        if axes.lines:
            axes.legend(loc="best", fontsize="small")
        else:
            axes.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=axes.transAxes)
        if epochs:
            axes.set_xticks(sorted(set(epochs)))
    _save(figure, path)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_matrix_plot(counts: np.ndarray, class_names: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix (each true class sums to 1), class names on both axes."""
    plt = _pyplot()
    rows = counts.sum(1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    size = min(4 + 0.35 * len(class_names), 20)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=90 if len(class_names) > 10 else 0)
    axes.set_yticks(ticks, class_names)
    axes.set(xlabel="predicted class", ylabel="true class", title=title)
    if len(class_names) <= 20:
        for (i, j), value in np.ndenumerate(normalised):
            if counts[i, j]:
                axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    _save(figure, path)


def tsne_plot(features: np.ndarray, domains: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path,
              seed: int = 0) -> None:
    """Two panels of one 2-D t-SNE embedding: coloured by domain (0 source, 1 target), and by class."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    figure, (by_domain, by_class) = plt.subplots(1, 2, figsize=(12, 5.5))
    for value, name, colour in ((0, "source", "tab:blue"), (1, "target", "tab:red")):
        mask = domains == value
        by_domain.scatter(*embedding[mask].T, s=6, alpha=0.6, c=colour, label=f"{name} ({mask.sum()})")
    by_domain.legend(loc="best", markerscale=3)
    by_domain.set_title("by domain")
    colours = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for index, name in enumerate(class_names):
        for value, marker in ((0, "o"), (1, "x")):
            mask = (labels == index) & (domains == value)
            if mask.any():
                by_class.scatter(*embedding[mask].T, s=8, alpha=0.7, marker=marker, color=colours(index % colours.N),
                                 label=name if value == 0 or not ((labels == index) & (domains == 0)).any() else None)
    if len(class_names) <= 20:
        by_class.legend(loc="best", fontsize="small", markerscale=2, ncol=2)
    by_class.set_title("by class (o source, x target)")
    for axes in (by_domain, by_class):
        axes.set_xticks([])
        axes.set_yticks([])
    _save(figure, path)


def model_pictures(classifier: Callable, normalize: Callable, splits: dict, class_names: list[str],
                   directory: Path, tsne_points: int = 1000, seed: int = 0, batch_size: int = 512) -> None:
    """Confusion matrix on the target test split and t-SNE of source and target test features.

    `classifier(images) -> (logits, features)` (a `Classifier`), `normalize` turns uint8 images
    into its input, `splits` maps "source"/"target" to (uint8 images, labels). The t-SNE takes at
    most `tsne_points` images, half from each domain, drawn with a fixed seed; 0 draws none (a
    `trainer=debug` run: the t-SNE would take most of its time).
    """
    import torch

    outputs = {}
    device = next(classifier.parameters()).device
    classifier.eval()
    with torch.no_grad():
        for domain, (images, labels) in splits.items():
            logits, features = [], []
            for chunk in images.split(batch_size):
                out_logits, out_features = classifier(normalize(chunk.to(device)))
                logits.append(out_logits.float().cpu())
                features.append(out_features.float().cpu())
            outputs[domain] = (torch.cat(logits).numpy(), torch.cat(features).numpy(), labels.numpy())
    logits, _, labels = outputs["target"]
    counts = confusion_matrix(labels, logits.argmax(1), len(class_names))
    confusion_matrix_plot(counts, class_names, directory / CONFUSION, "target test: confusion matrix")
    if tsne_points <= 0:
        return
    rng = np.random.default_rng(seed)
    parts = []
    for value, domain in enumerate(("source", "target")):
        _, features, labels = outputs[domain]
        keep = np.sort(rng.choice(len(labels), min(len(labels), tsne_points // 2), replace=False))
        parts.append((features[keep], np.full(len(keep), value), labels[keep]))
    tsne_plot(*(np.concatenate(p) for p in zip(*parts)), class_names, directory / TSNE, seed)
