"""Every default price and rate the cost projection uses, in one documented place.

Each field carries its unit and where its default comes from. Override any of them under
``prices:`` in ``ragtune.yaml``; ``ragtune schema`` lists them for editors. The defaults are
deliberately round: they are a starting point for a projection, not a quote.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Prices(BaseModel):
    """Prices and rates for the cost projection (override under ``prices:`` in ragtune.yaml)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- tokens ----------------------------------------------------------------------------------
    input_usd_per_1m_tokens: float = Field(
        0.50,
        ge=0,
        description="USD per 1M prompt tokens of the serving model. Source: hosted list "
        "prices of mid-size open models that take LoRA adapters (Llama-3-70B / Mixtral class, "
        "about 0.2-0.9 USD), 2025-2026.",
    )
    output_usd_per_1m_tokens: float = Field(
        1.50,
        ge=0,
        description="USD per 1M generated tokens of the serving model. Same source as above; "
        "the same for every strategy, so it shifts all curves alike.",
    )
    output_tokens_per_call: int = Field(
        250, ge=0, description="Tokens generated per call (tokens). Typical of a short answer."
    )
    embedding_usd_per_1m_tokens: float = Field(
        0.02,
        ge=0,
        description="USD per 1M tokens embedded when (re-)indexing documents. Source: hosted "
        "small embedding models; a local all-MiniLM-L6-v2 costs only CPU time.",
    )
    # -- extra context per call -----------------------------------------------------------------
    retrieval_context_tokens: int = Field(
        800,
        ge=0,
        description="Extra prompt tokens per call for retrieved context (tokens): top-4 chunks of "
        "about 200 tokens.",
    )
    fewshot_context_tokens: int = Field(
        400,
        ge=0,
        description="Extra prompt tokens per call for few-shot examples (tokens): two examples of "
        "about 200 tokens.",
    )
    instruction_prompt_tokens: int = Field(
        1000,
        ge=0,
        description="System-prompt tokens spent per call to describe a behaviour when it is "
        "prompted rather than trained and the project gives no figure (tokens).",
    )
    knowledge_prompt_tokens: int = Field(
        6000,
        ge=0,
        description="Prompt tokens per call when a body of knowledge is pasted into the prompt "
        "instead of retrieved, when its sources cannot be measured (tokens).",
    )
    long_prompt_tokens: int = Field(
        1000,
        ge=0,
        description="A system prompt at least this long, spent on a behaviour that must hold "
        "across many calls, is flagged as a LoRA candidate (tokens).",
    )
    # -- fine-tuning ----------------------------------------------------------------------------
    gpu_usd_per_hour: float = Field(
        2.50,
        ge=0,
        description="USD per GPU hour for training. Source: on-demand A100/H100-class cloud "
        "prices, 2025-2026 (about 2-4 USD).",
    )
    finetune_gpu_hours: float = Field(
        4.0,
        ge=0,
        description="GPU hours for one LoRA run with its data preparation jobs (hours): a 7-8B "
        "model on a few thousand examples.",
    )
    eval_usd_per_run: float = Field(
        25.0,
        ge=0,
        description="USD to evaluate one trained adapter before it ships (GPU time and "
        "judge calls on a held-out set).",
    )
    engineer_usd_per_hour: float = Field(
        100.0, ge=0, description="USD per engineer hour, loaded cost."
    )
    engineer_hours_per_finetune: float = Field(
        6.0,
        ge=0,
        description="Engineer hours per fine-tune run: refresh the data, launch, review the "
        "evaluation, roll out (hours).",
    )
    # -- keeping context current ----------------------------------------------------------------
    reindex_tokens_per_change: int = Field(
        50_000,
        ge=0,
        description="Tokens re-embedded per knowledge change (tokens): the documents it touches.",
    )
    engineer_hours_per_reindex: float = Field(
        0.25,
        ge=0,
        description="Engineer hours to review one re-index (hours); the sync itself is automatic.",
    )
    engineer_hours_per_prompt_change: float = Field(
        0.5,
        ge=0,
        description="Engineer hours to update a prompt or its examples after a change (hours).",
    )
    # -- rates ----------------------------------------------------------------------------------
    default_calls_per_month: int = Field(
        10_000,
        ge=0,
        description="Calls per month assumed for a capability that states none and whose "
        "description gives no volume (calls).",
    )
    high_volume_calls_per_month: int = Field(
        1_000,
        ge=0,
        description="Calls per month from which a behaviour counts as one that must hold "
        "across thousands of calls (calls): where an adapter starts to pay back.",
    )
    changes_per_year_volatile: float = Field(
        12.0,
        ge=0,
        description="Changes per year assumed for something that changes within 6 months when "
        "neither the description nor git history gives a rate (changes/year): monthly.",
    )
    changes_per_year_stable: float = Field(
        1.0,
        ge=0,
        description="Changes per year assumed for something stable (changes/year): a yearly "
        "review.",
    )

    def finetune_run_usd(self) -> float:
        """USD for one fine-tune run: GPU time, evaluation and engineer time."""
        return (
            self.finetune_gpu_hours * self.gpu_usd_per_hour
            + self.eval_usd_per_run
            + self.engineer_hours_per_finetune * self.engineer_usd_per_hour
        )

    def reindex_usd(self) -> float:
        """USD for one re-index of changed knowledge: embedding and a review."""
        return (
            self.reindex_tokens_per_change / 1e6 * self.embedding_usd_per_1m_tokens
            + self.engineer_hours_per_reindex * self.engineer_usd_per_hour
        )

    def prompt_change_usd(self) -> float:
        """USD to update a prompt or its examples after a change."""
        return self.engineer_hours_per_prompt_change * self.engineer_usd_per_hour

    def input_usd(self, tokens: float) -> float:
        """USD for ``tokens`` prompt tokens."""
        return tokens / 1e6 * self.input_usd_per_1m_tokens
