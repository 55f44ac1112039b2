"""Deprecated: `distill.answers` (the grader) is now `distill.grading.answers`; this name works for one more release.

A package rather than a module file so that the old file's history follows it to its new home (git's rename
detection). Importing it warns once and hands back the real module, so private names and monkeypatching work.
"""

import sys
import warnings

from distill.grading import answers as _moved

warnings.warn("distill.answers moved to distill.grading.answers; import it from there (the old name goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
