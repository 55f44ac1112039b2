"""The one grader, shared by curate and eval: math answers (and the math-verify judge), code programs, the
bubblewrap sandbox. Imports only distill.core."""
