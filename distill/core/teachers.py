"""The teacher registry: a name users type -> the model, its R1 sampling defaults and how to serve it.

    spec = TEACHERS["deepseek-r1"]
    spec.model_id, spec.temperature, spec.serving["h100"]   # 'deepseek-ai/DeepSeek-R1', 0.6, {...}

`distill teachers` prints this table. A registry entry is only defaults: `--model`, `--temperature`,
`--max-tokens` etc. override any of them for one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.core.errors import DistillError

# DeepSeek's usage advice for R1 and its distilled students: no system prompt, temperature 0.5-0.7 (0.6),
# top-p 0.95, and for math a user prompt that asks for the boxed final answer.
R1_PROMPT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
# For code prompts (rows with tests) the answer is a program, which curate and the code eval read from the last
# fenced block after </think> (distill/grading/programs.py), so the instruction asks for exactly that.
CODE_PROMPT_SUFFIX = ("Please reason step by step, then give your complete solution as a Python program in a single "
                      "```python code block.")


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    model_id: str
    description: str
    reasoning: bool = True  # writes <think>...</think> before its answer
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    system_prompt: str | None = None
    prompt_suffix: str = R1_PROMPT_SUFFIX
    code_prompt_suffix: str = CODE_PROMPT_SUFFIX
    max_model_len: int = 40960  # prompt + max_tokens, what the serving hints size the KV cache for
    # GPU type -> how to serve one replica: tensor/pipeline parallel sizes and the node count they imply
    serving: dict[str, dict[str, int]] = field(default_factory=dict)
    backend: str | None = None  # a registry entry can require a backend (the demo's program teacher does)


# The 671B MoE DeepSeek models in FP8 need ~700 GB of weights: one 8xH200 node (141 GB each) or two 8xH100
# nodes (80 GB each), with tensor parallelism inside a node and pipeline parallelism across nodes.
_DEEPSEEK_671B = {
    "h200": {"tensor_parallel": 8, "pipeline_parallel": 1, "nodes": 1},
    "h100": {"tensor_parallel": 8, "pipeline_parallel": 2, "nodes": 2},
    "b200": {"tensor_parallel": 8, "pipeline_parallel": 1, "nodes": 1},
}

TEACHERS: dict[str, TeacherSpec] = {
    t.name: t
    for t in [
        TeacherSpec(
            name="deepseek-r1",
            model_id="deepseek-ai/DeepSeek-R1",
            description="DeepSeek-R1 (Jan 2025), the teacher of the R1-Distill students",
            serving=_DEEPSEEK_671B,
        ),
        TeacherSpec(
            name="deepseek-r1-0528",
            model_id="deepseek-ai/DeepSeek-R1-0528",
            description="DeepSeek-R1-0528: longer, more accurate reasoning (AIME 2025 87.5%)",
            max_model_len=65536,  # its traces run ~23K tokens on AIME; leave room past 32K when raising max_tokens
            serving=_DEEPSEEK_671B,
        ),
        TeacherSpec(
            name="deepseek-v3",
            model_id="deepseek-ai/DeepSeek-V3-0324",
            description="DeepSeek-V3 (non-reasoning): the non-reasoning slice of an R1-style SFT mixture",
            reasoning=False,
            max_tokens=8192,  # direct answers; 32K would only waste KV cache
            max_model_len=16384,
            serving=_DEEPSEEK_671B,
        ),
        TeacherSpec(
            name="qwq-32b",
            model_id="Qwen/QwQ-32B",
            description="QwQ-32B, a dense 32B reasoning model (fits one node; cheap teacher)",
            serving={
                "h200": {"tensor_parallel": 1, "pipeline_parallel": 1, "nodes": 1},
                "h100": {"tensor_parallel": 2, "pipeline_parallel": 1, "nodes": 1},  # 65 GB bf16 + KV cache
                "a100-80gb": {"tensor_parallel": 2, "pipeline_parallel": 1, "nodes": 1},
            },
        ),
        TeacherSpec(
            name="arithmetic",
            model_id="arithmetic",
            description="the demo's program teacher: step-by-step sums, 4% each of wrong, truncated, looping "
            "and mixed-language traces (rates: --model 'arithmetic?wrong_answer=0.1')",
            max_tokens=1024,  # its longest traces (the repetition loops) are ~500 tokens
            max_model_len=2048,
            backend="arithmetic",
        ),
    ]
}


def get_teacher(name: str) -> TeacherSpec:
    if name not in TEACHERS:
        raise DistillError(
            f"unknown teacher '{name}'; choose one of {', '.join(TEACHERS)} (`distill teachers` lists them), "
            "or keep a teacher for its defaults and pass --model to run another model with them"
        )
    return TEACHERS[name]


def register_teacher(spec: TeacherSpec) -> None:
    """Add a teacher (plugins, the demo's program teacher)."""
    TEACHERS[spec.name] = spec
