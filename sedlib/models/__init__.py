"""Model modules: fmn backbone, sequence models (seq/), assembled SED model, inference rewrites."""
