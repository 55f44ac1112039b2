"""Deprecated: `distill.code_tasks` (the lm-eval hooks of the code task families) is now `distill.eval.code_hooks`; this name works for one more release.

A package rather than a module file so that the old file's history follows it to its new home (git's rename
detection). Importing it warns once and hands back the real module, so private names and monkeypatching work.
"""

import sys
import warnings

from distill.eval import code_hooks as _moved

warnings.warn("distill.code_tasks moved to distill.eval.code_hooks; import it from there (the old name goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
