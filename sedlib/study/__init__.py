"""The study: numbered notebooks executed by papermill, cached training runs, their figures.

- :mod:`~sedlib.study.runner`: ``run_study`` (papermill into a run folder);
  :mod:`~sedlib.study.profiles`: the YAML profiles and the notebooks' parameters cells.
- :mod:`~sedlib.study.config`: ``StudyConfig`` and the notebooks' flat parameters.
- :mod:`~sedlib.study.experiments`: ``Experiment`` (one training run, keyed by its full config);
  :mod:`~sedlib.study.cache`: run-once-and-reuse; :mod:`~sedlib.study.training`: what a run does;
  :mod:`~sedlib.study.workers` / :mod:`~sedlib.study.slurm`: runs side by side here, or as
  SLURM jobs (submitit).
- :mod:`~sedlib.study.notebook`: helpers the notebooks call (paths, outputs, tables);
  :mod:`~sedlib.study.results`: the results table.
- :mod:`~sedlib.study.stride`, :mod:`~sedlib.study.teachers`, :mod:`~sedlib.study.listen`,
  :mod:`~sedlib.study.plots`: clip-wise strides, teachers, the listening widget, figures.
- :mod:`~sedlib.study.intervals`: means over seeds with 95 % intervals, paired differences,
  the verdict sentence of a comparison.

May import every room above it (config, audio, data, models, evaluate, detect, train,
complexity); nothing below imports it except ``sedlib.commands``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "run_study": ".runner", "load_profile": ".runner", "StudyConfig": ".config",
    "configs_from_parameters": ".config", "parameters_from": ".config",
    "Experiment": ".experiments", "ExperimentResult": ".experiments",
    "make_experiment": ".experiments", "pretraining_experiment": ".experiments",
    "run_experiment": ".cache", "run_experiments": ".cache", "run_models": ".cache",
    "run_over_seeds": ".cache",
    "load_result": ".cache", "open_data": ".training", "project_path": "sedlib.config",
    "prepare": ".notebook", "results_frame": ".notebook", "comparison_figure": ".notebook",
    "save_outputs": ".notebook", "markdown_table": ".notebook", "show_figure": ".notebook",
    "figure_bundle": ".notebook", "paper_figure": ".plots",
    "save_figure": ".plots", "tradeoff_figure": ".plots", "learning_curve_figure": ".plots",
    "mean_interval": ".intervals", "paired_difference": ".intervals", "verdict": ".intervals",
    "summarise_seeds": ".intervals", "compare_configurations": ".intervals",
})
