"""Knowledge distillation from stored teacher predictions (SPEC 5, SPEC 2.2).

* :func:`kd_loss`: (1 - w) * BCE(student, hard labels) + w * BCE(student, teacher probabilities).
* Pseudo-label store in the layout of the reference's ensemble file (Zenodo record 14626113):
  one HDF5 file with ``filenames`` (variable-length UTF-8 bytes, one per clip) and
  ``strong_logits`` (float16, ``(N, K, T)``, 447 x 250 for AudioSet Strong). Files written here
  also carry the attributes ``num_classes``, ``num_frames``, ``num_clips`` and ``teachers``
  (JSON list of teacher names); the reader does not need them.
* :func:`make_pseudo_labels`: run one teacher or an ensemble (mean of strong logits) over a data
  set and write such a store.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from sedlib.errors import FormatError, SedlibError
from sedlib.progress import tqdm
from sedlib.train.augment import PSEUDO_KEY, WAVEFORM_KEY

logger = logging.getLogger(__name__)

FILENAMES = "filenames"
LOGITS = "strong_logits"


class MissingPseudoLabelError(SedlibError, KeyError):
    """A clip has no row in a pseudo-label store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --- store: reader -------------------------------------------------------------------------------

def _decode(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, (bytes, np.bytes_)) else str(name)


class PseudoLabelStore:
    """Read-only view of a pseudo-label HDF5 file: ``filename -> (K, T)`` teacher outputs.

    The filename index is read once, at construction; the HDF5 handle is opened on first access
    and re-opened in every process that uses it (h5py handles must not cross a fork), so one
    store can be handed to a DataLoader with workers. Pickling drops the handle.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(f"pseudo-label store {self.path} does not exist")
        try:
            with h5py.File(self.path, "r") as f:
                for key in (FILENAMES, LOGITS):
                    if key not in f:
                        raise FormatError(f"{self.path}: no dataset {key!r} (found {sorted(f)}); "
                                          f"expected {FILENAMES!r} and {LOGITS!r}")
                names = [_decode(n) for n in f[FILENAMES][()]]
                shape = f[LOGITS].shape
                self.teachers: tuple[str, ...] = tuple(json.loads(f.attrs.get("teachers", "[]")))
        except OSError as err:
            raise FormatError(f"{self.path}: not a readable HDF5 file ({err})") from None
        if len(shape) != 3 or shape[0] != len(names):
            raise FormatError(f"{self.path}: {LOGITS!r} has shape {shape}, expected "
                              f"({len(names)}, K, T) for {len(names)} filenames")
        self.num_classes, self.num_frames = int(shape[1]), int(shape[2])
        self._index: dict[str, int] = {}
        for row, name in enumerate(names):
            if name in self._index:
                raise FormatError(f"{self.path}: clip {name!r} appears twice (rows "
                                  f"{self._index[name]} and {row})")
            self._index[name] = row
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, filename: object) -> bool:
        return filename in self._index

    @property
    def filenames(self) -> list[str]:
        """Clip names in row order."""
        return list(self._index)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")  # a handle inherited via fork is not reused
            self._pid = os.getpid()
        return self._file

    def _row(self, filename: str) -> int:
        try:
            return self._index[filename]
        except KeyError:
            stem = Path(filename).stem
            alike = [n for n in self._index if Path(n).stem == stem][:3]
            hint = f"; stored under {alike}?" if alike else f"; e.g. {list(self._index)[:3]}"
            raise MissingPseudoLabelError(
                f"clip {filename!r} is not in pseudo-label store {self.path} "
                f"({len(self)} clips{hint})") from None

    def logits(self, filename: str) -> Tensor:
        """Stored teacher logits of one clip, ``(K, T)`` float32."""
        return torch.from_numpy(self._handle()[LOGITS][self._row(filename)].astype(np.float32))

    def probs(self, filename: str) -> Tensor:
        """sigmoid(stored logits), ``(K, T)`` float32: the KD targets (reference
        ``AddPseudoLabelsTransform``)."""
        return torch.sigmoid(self.logits(filename))

    __getitem__ = probs

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None

    def __enter__(self) -> "PseudoLabelStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state

    def __repr__(self) -> str:
        return (f"PseudoLabelStore({str(self.path)!r}, {len(self)} clips, K={self.num_classes}, "
                f"T={self.num_frames})")


class WithPseudoLabels(torch.utils.data.Dataset):
    """Adds ``pseudo_targets`` = store probabilities of ``item["filename"]`` to every item of a
    data set (the reference's ``AddPseudoLabelsTransform``). A clip missing from the store
    raises :class:`MissingPseudoLabelError`."""

    def __init__(self, dataset: torch.utils.data.Dataset,
                 store: PseudoLabelStore | str | os.PathLike) -> None:
        self.dataset = dataset
        self.store = store if isinstance(store, PseudoLabelStore) else PseudoLabelStore(store)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item[PSEUDO_KEY] = self.store.probs(item["filename"])
        return item


# --- store: writer -------------------------------------------------------------------------------

class PseudoLabelWriter:
    """Writes a pseudo-label store atomically.

    Rows go to a temporary file beside ``path`` (``.<name>.<pid>.<random>.partial``); :meth:`close`
    (or leaving the ``with`` block normally) records the attributes, flushes, fsyncs and renames
    it to ``path``. An exception inside the ``with`` block, or :meth:`abort`, deletes the
    temporary file and leaves ``path`` untouched; a killed process leaves only the ``.partial``
    file, never a file at ``path`` that looks complete. ``expected_rows``, when given, makes
    :meth:`close` refuse (and abort) a store with a different number of clips.
    """

    def __init__(self, path: str | os.PathLike, num_classes: int, num_frames: int, *,
                 teachers: Sequence[str] = (), expected_rows: int | None = None,
                 chunk_rows: int = 1) -> None:
        if num_classes <= 0 or num_frames <= 0:
            raise ValueError(f"num_classes and num_frames must be positive, got {num_classes}, "
                             f"{num_frames}")
        self.path = Path(path)
        self.num_classes, self.num_frames = int(num_classes), int(num_frames)
        self.teachers = tuple(str(t) for t in teachers)
        self.expected_rows = expected_rows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # exclusive create with the umask's permissions (mkstemp would make it 0600)
        self.tmp_path = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
        self._names: dict[str, int] = {}
        try:
            self._file = h5py.File(self.tmp_path, "x")
            self._names_ds = self._file.create_dataset(
                FILENAMES, shape=(0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"),
                chunks=(1024,))
            self._logits_ds = self._file.create_dataset(
                LOGITS, shape=(0, self.num_classes, self.num_frames),
                maxshape=(None, self.num_classes, self.num_frames), dtype=np.float16,
                chunks=(chunk_rows, self.num_classes, self.num_frames))
        except BaseException:
            self.tmp_path.unlink(missing_ok=True)
            raise
        self._open = True

    def __len__(self) -> int:
        return len(self._names)

    def write(self, filenames: Sequence[str], logits: Tensor | np.ndarray) -> None:
        """Append clips: ``filenames`` (B,) and their strong logits ``(B, K, T)`` (stored as
        float16)."""
        if not self._open:
            raise RuntimeError(f"pseudo-label writer for {self.path} is closed")
        if isinstance(logits, Tensor):
            arr = logits.detach().float().cpu().numpy()
        else:
            arr = np.asarray(logits)
        expected = (len(filenames), self.num_classes, self.num_frames)
        if arr.shape != expected:
            raise ValueError(f"{self.path}: logits of shape {arr.shape}, expected {expected}")
        seen = set(self._names)
        for name in filenames:
            if name in seen:
                raise ValueError(f"{self.path}: clip {name!r} written twice")
            seen.add(name)
        for name in filenames:
            self._names[name] = len(self._names)
        n0, n1 = self._names_ds.shape[0], self._names_ds.shape[0] + len(filenames)
        self._names_ds.resize((n1,))
        self._logits_ds.resize((n1, self.num_classes, self.num_frames))
        self._names_ds[n0:n1] = [str(n).encode("utf-8") for n in filenames]
        self._logits_ds[n0:n1] = arr.astype(np.float16)

    def close(self) -> Path:
        """Finish: check the row count, write the attributes, rename into place; returns
        ``path``."""
        if not self._open:
            raise RuntimeError(f"pseudo-label writer for {self.path} is already closed")
        if self.expected_rows is not None and len(self) != self.expected_rows:
            self.abort()
            raise SedlibError(f"{self.path}: {len(self)} clips written, {self.expected_rows} "
                              f"expected; nothing was written")
        try:
            attrs = self._file.attrs
            attrs["num_classes"] = self.num_classes
            attrs["num_frames"] = self.num_frames
            attrs["num_clips"] = len(self)
            attrs["teachers"] = json.dumps(list(self.teachers))
            self._file.close()
            with open(self.tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._open = False
        logger.info("wrote %d clips of pseudo labels to %s", len(self), self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written; ``path`` is left as it was."""
        if self._file.id.valid:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)
        self._open = False

    def __enter__(self) -> "PseudoLabelWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._open:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- generation ----------------------------------------------------------------------------------

def _teacher_name(model: nn.Module) -> str:
    name = getattr(model, "name", None)
    return str(name) if name else type(model).__name__


def _strong(output: Tensor | tuple | list) -> Tensor:
    """A teacher's strong logits: ``SEDModel`` returns ``(strong, weak)``, others a tensor."""
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.no_grad()
def make_pseudo_labels(teachers: Sequence[nn.Module] | nn.Module,
                       dataset: torch.utils.data.Dataset, out_path: str | os.PathLike, *,
                       batch_size: int, device: str | torch.device,
                       frontend: nn.Module | Sequence[nn.Module], progress: bool = True,
                       num_workers: int = 0, teacher_names: Sequence[str] | None = None) -> Path:
    """Run one teacher or an ensemble over ``dataset`` and store the **mean of their strong
    logits** per clip (float16) at ``out_path`` (atomically; see :class:`PseudoLabelWriter`).

    Args:
        teachers: models mapping log-mel ``(B, 1, F, T_mel)`` to strong logits ``(B, K, T)``
            (or to a tuple whose first element they are, as :class:`~sedlib.models.sed.SEDModel`).
        dataset: items with ``waveform`` ``(N,)`` (equal N) and ``filename`` (unique).
        frontend: waveform -> log-mel, one for all teachers or one per teacher.
        device: where teachers and front ends run (they are moved there and stay there); they
            are put in eval mode for the run (no dropout, no mel band jitter) and returned to
            their previous mode afterwards.

    Returns ``out_path``. Teacher names (``teacher_names`` or each model's ``name``) are stored
    in the file's ``teachers`` attribute.
    """
    teachers = [teachers] if isinstance(teachers, nn.Module) else list(teachers)
    if not teachers:
        raise ValueError("make_pseudo_labels needs at least one teacher")
    frontends = [frontend] * len(teachers) if isinstance(frontend, nn.Module) else list(frontend)
    if len(frontends) != len(teachers):
        raise ValueError(f"{len(frontends)} front ends for {len(teachers)} teachers")
    if teacher_names is None:
        teacher_names = [_teacher_name(t) for t in teachers]
    names = list(teacher_names)
    if len(names) != len(teachers):
        raise ValueError(f"{len(names)} teacher names for {len(teachers)} teachers")
    device = torch.device(device)
    modules = list({id(m): m for m in [*teachers, *frontends]}.values())
    modes = [m.training for m in modules]
    for m in modules:
        m.to(device).eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers)
    writer: PseudoLabelWriter | None = None
    try:
        with tqdm(total=len(dataset), desc="pseudo labels", unit="clip",
                  disable=not progress) as bar:
            for batch in loader:
                waveform = batch[WAVEFORM_KEY].to(device)  # (B, N)
                mels: dict[int, Tensor] = {}
                total: Tensor | None = None
                for teacher, fe in zip(teachers, frontends):
                    if id(fe) not in mels:
                        mels[id(fe)] = fe(waveform)  # (B, 1, F, T_mel)
                    logits = _strong(teacher(mels[id(fe)])).float()  # (B, K, T)
                    if total is not None and logits.shape != total.shape:
                        raise ValueError(f"teacher {_teacher_name(teacher)} gives logits of shape "
                                         f"{tuple(logits.shape)}, others {tuple(total.shape)}")
                    total = logits if total is None else total + logits
                mean = total / len(teachers)  # (B, K, T)
                if writer is None:
                    writer = PseudoLabelWriter(out_path, mean.shape[1], mean.shape[2],
                                               teachers=names, expected_rows=len(dataset))
                writer.write(list(batch["filename"]), mean)
                bar.update(len(mean))
        if writer is None:
            raise ValueError("make_pseudo_labels: the data set is empty")
        return writer.close()
    except BaseException:
        if writer is not None and writer._open:
            writer.abort()
        raise
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def parse_teacher(spec: str) -> tuple[str | None, str | None]:
    """``NAME[:CHECKPOINT]`` or a release name -> (model name or None, checkpoint or None).
    The model-name grammar has one ``:`` (``fmn10+TF:256``), so the name is the longest prefix
    that parses."""
    from sedlib.errors import SedlibError
    from sedlib.models.names import parse_name
    from sedlib.models.releases import RELEASES

    if spec in RELEASES:
        return None, spec
    parts = spec.split(":")
    for cut in range(len(parts), 0, -1):
        name, checkpoint = ":".join(parts[:cut]), ":".join(parts[cut:]) or None
        try:
            parse_name(name)
        except ValueError:
            continue
        return name, checkpoint
    if len(parts) > 1 or spec.endswith((".pt", ".safetensors", ".ckpt")):
        return None, spec  # a checkpoint that names its model
    raise SedlibError(f"--teacher {spec!r}: neither NAME[:CHECKPOINT] nor a release name")


def load_teacher(spec: str, vocab):
    """The teacher model of ``spec`` in eval mode; SedlibError unless it predicts ``vocab``."""
    from sedlib.trained import load_trained_model
    from sedlib.errors import SedlibError

    name, checkpoint = parse_teacher(spec)
    if checkpoint is None:
        raise SedlibError(f"--teacher {spec!r}: give its weights (NAME:CHECKPOINT or a release "
                          f"name); an untrained teacher makes meaningless labels")
    try:
        model, classes = load_trained_model(name, checkpoint)
    except SedlibError as err:
        raise SedlibError(f"--teacher {spec!r}: {err}") from None
    if list(classes.names) != list(vocab.names):
        raise SedlibError(f"--teacher {spec!r} predicts {len(classes)} classes ({classes.name}), "
                          f"the data has {len(vocab)} ({vocab.name}); they must be the same classes")
    return model
