"""The teacher registry: a name users type -> the model, its R1 sampling defaults and how to serve it.

    spec = TEACHERS["deepseek-r1"]
    spec.model_id, spec.temperature, spec.serving["h100"]   # 'deepseek-ai/DeepSeek-R1', 0.6, {...}

`distill teachers` prints this table. A registry entry is only defaults: `--model`, `--temperature`,
`--max-tokens` etc. override any of them for one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.core.errors import DistillError
from distill.core.protocol import CODE_PROMPT_SUFFIX, R1_PROMPT_SUFFIX


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
    license: str = "other"  # of the teacher's outputs, as its model license states it (the dataset card's license)


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
            license="mit",
            model_id="deepseek-ai/DeepSeek-R1",
            description="DeepSeek-R1 (Jan 2025), the teacher of the R1-Distill students",
            serving=_DEEPSEEK_671B,
        ),
        TeacherSpec(
            name="deepseek-r1-0528",
            license="mit",
            model_id="deepseek-ai/DeepSeek-R1-0528",
            description="DeepSeek-R1-0528: longer, more accurate reasoning (AIME 2025 87.5%)",
            max_model_len=65536,  # its traces run ~23K tokens on AIME; leave room past 32K when raising max_tokens
            serving=_DEEPSEEK_671B,
        ),
        TeacherSpec(
            name="deepseek-v3",
            license="mit",
            model_id="deepseek-ai/DeepSeek-V3-0324",
            description="DeepSeek-V3 (non-reasoning): the non-reasoning slice of an R1-style SFT mixture",
            reasoning=False,
            max_tokens=8192,  # direct answers; 32K would only waste KV cache
            max_model_len=16384,
            serving=_DEEPSEEK_671B,
        ),
        TeacherSpec(
            name="qwq-32b",
            license="apache-2.0",
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


# ---------------------------------------------------------------- teachers


@dataclass(frozen=True)
class TeacherProfile:
    weights_gb: float  # what one replica must hold
    active_params: float  # per token (MoE: the routed experts only)
    trace_tokens: float  # mean completion length on math prompts
    trace_source: str
    decode_tok_s_per_gpu: float  # output tokens/s per GPU of a busy replica on the reference GPU
    decode_gpu: str  # the reference GPU; others scale by HBM bandwidth (decode reads weights + KV per step)
    decode_source: str


# GPUStack's DeepSeek-R1 benchmark on one 8xH200 node, SGLang --tp 8 --enable-dp-attention, ShareGPT:
# 7,143 tokens/s (2025-11, https://docs.gpustack.ai/latest/performance-lab/deepseek-r1/h200). DeepSeek's own
# production figure is 2x that (14.8K output tokens/s per H800 node with cross-node expert parallelism,
# https://github.com/deepseek-ai/open-infra-index, day 6), out of reach of one self-hosted replica.
_R1_DECODE = (7143 / 8, "h200", "GPUStack DeepSeek-R1 on 8xH200, SGLang tp8 + dp-attention, ShareGPT, 7,143 tok/s per "
              "node (docs.gpustack.ai/latest/performance-lab/deepseek-r1/h200)")
_R1_TRACE = (6000, "open-r1 update #1: R1's responses in OpenThoughts average 6,000 tokens "
             "(huggingface.co/blog/open-r1/update-1)")
TEACHER_PROFILES: dict[str, TeacherProfile] = {
    "deepseek-r1": TeacherProfile(700, 37e9, *_R1_TRACE, *_R1_DECODE),
    "deepseek-r1-0528": TeacherProfile(700, 37e9, 23000, "DeepSeek: R1-0528 uses 23K tokens per AIME question "
                                       "(huggingface.co/deepseek-ai/DeepSeek-R1-0528); AIME is its longest case",
                                       *_R1_DECODE),
    "deepseek-v3": TeacherProfile(700, 37e9, 1000, "estimate: direct answers, no reasoning", *_R1_DECODE),
    # dense 32B: about the active size of R1 (37B), so its per-GPU decode rate is taken to be R1's
    "qwq-32b": TeacherProfile(66, 32.8e9, _R1_TRACE[0], _R1_TRACE[1] + " (R1's figure: none published for QwQ)",
                              _R1_DECODE[0], "h200", _R1_DECODE[2] + "; QwQ-32B (dense, 32.8B) taken as R1 (37B "
                              "active)"),
}
