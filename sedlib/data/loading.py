"""Batching plumbing shared by training and evaluation: collation, per-epoch reseeding of data
sets and the 50/50 strong/weak loader of Table II.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from torch.utils.data import default_collate


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate`` after checking all items have the same keys (a strong and a weak item
    in one batch would otherwise fail with a bare KeyError)."""
    keys = set(items[0])
    for item in items[1:]:
        if set(item) != keys:
            raise ValueError(f"cannot batch item {item.get('filename')!r} (keys {sorted(item)}) "
                             f"with {items[0].get('filename')!r} (keys {sorted(keys)})")
    return default_collate(items)


def set_epoch(dataset: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on a data set and every data set it wraps (``.dataset`` of
    WavMixDataset / WithPseudoLabels / Subset, ``.datasets`` of ConcatDataset)."""
    seen: set[int] = set()
    stack = [dataset]
    while stack:
        ds = stack.pop()
        if ds is None or id(ds) in seen:
            continue
        seen.add(id(ds))
        if callable(getattr(ds, "set_epoch", None)):
            ds.set_epoch(epoch)
        stack.append(getattr(ds, "dataset", None))
        stack.extend(getattr(ds, "datasets", None) or [])


class PairedLoader:
    """Two loaders in lockstep: each step yields ``{"strong": batch, "weak": batch}``; an epoch
    ends with the shorter one (Lightning ``CombinedLoader(..., mode="min_size")``)."""

    def __init__(self, strong_loader: Iterable, weak_loader: Iterable) -> None:
        sizes = [getattr(loader, "batch_size", None) for loader in (strong_loader, weak_loader)]
        if None not in sizes and sizes[0] != sizes[1]:
            raise ValueError(f"paired loaders must have equal batch sizes for a 50/50 mix, got "
                             f"strong {sizes[0]} and weak {sizes[1]}")
        self.strong, self.weak = strong_loader, weak_loader

    def __len__(self) -> int:
        return min(len(self.strong), len(self.weak))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for strong, weak in zip(self.strong, self.weak):
            yield {"strong": strong, "weak": weak}


def paired_loader(strong_loader: Iterable, weak_loader: Iterable) -> PairedLoader:
    """Batches of 50 % strongly labelled and 50 % teacher-only clips (Table II): iterate both
    loaders in lockstep. Build the two DataLoaders with the same ``batch_size``."""
    return PairedLoader(strong_loader, weak_loader)
