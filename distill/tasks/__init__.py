"""Built-in task packs: problem sets with exactly checkable answers, generated in code (no download).

    from distill.tasks.arithmetic import SumTask
    SumTask().prompts("train", 2000)        # PROMPT rows; `distill demo` writes them to runs/demo/prompts/
"""
