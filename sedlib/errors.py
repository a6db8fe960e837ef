"""Exceptions with messages meant for people: each names the file, line, key or shape at fault.

The command line prints a :class:`SedlibError` as one line (no traceback) and exits non-zero.
"""

from __future__ import annotations


class SedlibError(Exception):
    """Base class of every error sedlib raises on purpose (bad input, not a bug)."""


class AudioError(SedlibError, ValueError):
    """An audio file cannot be used: unreadable, empty, or containing NaN/inf samples."""


class FormatError(SedlibError, ValueError):
    """A metadata file (TSV/CSV/HDF5) is malformed; the message names the file and line."""


class UnknownClassError(SedlibError, KeyError):
    """A class name is not in the vocabulary in use."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(SedlibError, RuntimeError):
    """A checkpoint does not fit the model, or cannot be loaded safely."""


class DiskSpaceError(SedlibError, OSError):
    """Not enough free disk for something sedlib is about to write; the message names the
    folder, what it needs, what is free, and how to make room."""
