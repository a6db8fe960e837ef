"""Study profiles (``notebooks/<name>.yaml``) and the notebooks' parameters cells.

A profile::

    description: one paragraph
    common:                     # injected into every notebook that declares the name
      train_preset: quick
      clip_seconds: 4.0
    notebooks:
      02_sequence_models:       # one section per notebook (file stem); overrides common
        seq_dims: [56, 112]

Every name must be a parameter name (:func:`sedlib.study.config.parameter_names`). ``common``
goes to every notebook (a notebook picks it up through
:func:`sedlib.study.config.parameters_from` even if its parameters cell does not list it); a name
under ``notebooks.<stem>`` must be declared in that notebook's ``parameters`` cell. The runner
(:mod:`sedlib.study.runner`) adds ``run_dir``, ``figures_dir`` and ``cache_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from sedlib.config import PROJECT_ROOT
from sedlib.errors import SedlibError
from sedlib.study.config import parameter_names

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PROFILES = ("smoke", "quick", "classroom", "paper")


# --- profiles ------------------------------------------------------------------------------------

def notebooks(folder: str | os.PathLike = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``NN_topic.ipynb``), in order."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def load_profile(profile: str | os.PathLike, folder: str | os.PathLike = NOTEBOOKS_DIR
                 ) -> dict[str, Any]:
    """A profile by name (``quick`` -> ``notebooks/quick.yaml``) or path, its names checked."""
    import yaml

    path = Path(profile)
    if not path.suffix:
        path = Path(folder) / f"{profile}.yaml"
    if not path.is_file():
        raise SedlibError(f"no profile {path} (profiles: {', '.join(PROFILES)} or a YAML path)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    extra = set(data) - {"description", "common", "notebooks"}
    if extra:
        raise SedlibError(f"{path}: unknown top-level keys {sorted(extra)}; expected description, "
                          f"common, notebooks")
    known = parameter_names()
    sections = {"common": data.get("common") or {},
                **{f"notebooks.{k}": v or {} for k, v in (data.get("notebooks") or {}).items()}}
    for where, params in sections.items():
        bad = sorted(set(params) - set(known))
        if bad:
            raise SedlibError(f"{path}: {where}: unknown parameter(s) {bad} (not a field of "
                              f"StudyConfig/TrainConfig/DistillConfig/AudioConfig nor a "
                              f"notebook-only name)")
    return {"path": path, "description": data.get("description", ""),
            "common": dict(sections["common"]),
            "notebooks": {k: dict(v or {}) for k, v in (data.get("notebooks") or {}).items()}}


def declared_parameters(notebook: str | os.PathLike) -> dict[str, Any]:
    """Names and default values of a notebook's ``parameters`` cell (literals only)."""
    import ast

    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise SedlibError(f"{notebook}: expected one cell tagged 'parameters', found {len(cells)}")
    out = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise SedlibError(f"{notebook}: the parameters cell may only hold `name = literal` "
                              f"lines (line {node.lineno})")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise SedlibError(f"{notebook}: parameter {node.targets[0].id} (line {node.lineno}) "
                              f"is not a literal") from None
    return out


def notebook_parameters(profile: Mapping[str, Any], notebook: str | os.PathLike,
                        runner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What to inject into ``notebook``: common, then its own section, then ``runner``; a name
    in its own section that the notebook does not declare raises (a typo or a stale profile)."""
    stem = Path(notebook).stem
    declared = declared_parameters(notebook)
    own = profile["notebooks"].get(stem, {})
    missing = sorted(set(own) - set(declared))
    if missing:
        raise SedlibError(f"{profile['path']}: notebooks.{stem} sets {missing}, which "
                          f"{Path(notebook).name} does not declare in its parameters cell")
    return {**profile["common"], **own, **(runner or {})}
