"""Where distill's own files are: the package, the directory holding it (a checkout's root, or site-packages in an
install), its templates, and the eval task folders. Every `__file__`-relative path of the package is here."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # distill/
ROOT = PACKAGE.parent  # the checkout (or site-packages): what a subprocess puts on sys.path to import distill
TEMPLATES = PACKAGE / "templates"


def eval_dir() -> Path:
    """The task folders: $DISTILL_EVAL_DIR, else eval/ of the checkout this package runs from, else the copy a
    wheel install carries as distill/_eval."""
    if os.environ.get("DISTILL_EVAL_DIR"):
        return Path(os.environ["DISTILL_EVAL_DIR"]).expanduser()
    checkout = ROOT / "eval"
    return checkout if checkout.is_dir() else PACKAGE / "_eval"
