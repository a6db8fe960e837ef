"""One key adapter per foreign checkpoint format (``sedlib``, ``efficientsed``, ``fmn_weak``,
``efficientat``): a state_dict in that layout -> sedlib's keys plus what was dropped, and
:func:`detect_format` to tell the formats apart by their keys.
"""

from __future__ import annotations

from typing import Callable, Mapping

from torch import Tensor

from sedlib.errors import CheckpointError

Adapted = tuple[dict[str, Tensor], list[str]]  # (state_dict in sedlib layout, ignored keys)


HEADS = ("strong_head.", "weak_head.")


BACKBONE_PREFIX = "model.fmn."


def adapt_sedlib(sd: Mapping[str, Tensor]) -> Adapted:
    """Our own layout: unchanged."""
    return dict(sd), []


# backbone prefixes after ``net.`` -> ``model.``, longest first: Lightning files of the current
# reference wrapper (net.model.fmn.*), release files (net.model.* / model.model.*), PretrainedSED
_BACKBONE_ALIASES = ("model.model.fmn.", "model.model.frame_mn.", "model.model.", "model.frame_mn.")


def adapt_efficientsed(sd: Mapping[str, Tensor]) -> Adapted:
    """EfficientSED / PretrainedSED keys -> sedlib keys, as the reference loader renames them:
    ``net.`` -> ``model.``; ``model.model.`` (Lightning module) and ``model.frame_mn.``
    (PretrainedSED) -> ``model.fmn.``; any other ``model.`` prefix is dropped
    (``net.seq_model.*`` -> ``seq_model.*``). Also accepted: ``net.model.fmn.*`` (a Lightning
    file of the current reference wrapper, which the reference loader would mangle). Keys
    already in sedlib layout pass unchanged; mel-frontend keys (``model.mel.*``) are ignored."""
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in sd.items():
        new = "model." + key[len("net."):] if key.startswith("net.") else key
        for old in _BACKBONE_ALIASES:
            if new.startswith(old):
                new = BACKBONE_PREFIX + new[len(old):]
                break
        if new.startswith("model.mel.") or new.startswith("model.mel_"):
            ignored.append(key)
            continue
        if new.startswith("model.") and not new.startswith(BACKBONE_PREFIX):
            new = new[len("model."):]
        if new in out:
            raise CheckpointError(f"keys collide after renaming: {key!r} -> {new!r}")
        out[new] = value
    return out, ignored


def adapt_fmn_weak(sd: Mapping[str, Tensor]) -> Adapted:
    """``fmnXX_weak.pt`` (AudioSet Weak pre-training): EfficientSED renaming, then only the
    backbone is kept; heads (other classes/features) and anything else are ignored."""
    renamed, ignored = adapt_efficientsed(sd)
    out = {k: v for k, v in renamed.items() if k.startswith(BACKBONE_PREFIX)}
    ignored += [k for k in renamed if not k.startswith(BACKBONE_PREFIX)]
    return out, ignored


def adapt_efficientat(sd: Mapping[str, Tensor]) -> Adapted:
    """EfficientAT ``mn`` files: ``features.*`` -> ``model.fmn.features.*``; ``classifier.*``
    ignored. Any other key is an error (not an EfficientAT MobileNet file)."""
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in sd.items():
        if key.startswith("features."):
            out[BACKBONE_PREFIX + key] = value
        elif key.startswith("classifier."):
            ignored.append(key)
        else:
            raise CheckpointError(f"unexpected key {key!r} in an EfficientAT checkpoint "
                                  f"(expected features.* and classifier.*)")
    return out, ignored


ADAPTERS: dict[str, Callable[[Mapping[str, Tensor]], Adapted]] = {
    "sedlib": adapt_sedlib,
    "efficientsed": adapt_efficientsed,
    "fmn_weak": adapt_fmn_weak,
    "efficientat": adapt_efficientat,
}


def detect_format(sd: Mapping[str, Tensor]) -> str:
    """Guess the key format of a file of unknown origin from its key prefixes."""
    keys = list(sd)
    if keys and all(k.startswith(("features.", "classifier.")) for k in keys):
        return "efficientat"
    if any(k.startswith(("net.", "model.model.", "model.frame_mn.")) for k in keys):
        return "efficientsed"
    return "sedlib"
