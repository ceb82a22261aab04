"""Create the encrypted demo project: support requests, candidates from the embedded model, guidelines.

    report = run_job(create_demo_project("/tmp/demo", "passphrase"))

Seconds on a CPU: the demo model is ~1M parameters, and all candidates are sampled in large batches.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from core.jobs import NEVER, CancelToken, Progress
from core.models import DEFAULT_K

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL_ENV = "RLHF_STUDIO_DEMO_MODEL"

GUIDELINES = """\
You are judging replies written by a customer-support assistant. Rank the candidates best first.

A good reply:
- answers the customer's actual request (not a different one);
- states our policies correctly: returns within 30 days, refunds 5 business days after we receive the item,
  deliveries within 3 business days, reset links valid for 24 hours, 2-year warranty, free replacements
  for items damaged in shipping, temporary holds drop off within 3 business days;
- is polite and calm, even when the customer is angry;
- is complete but concise, and never asks for a password or card number.

Rank lower: vague non-answers ("we are looking into it"), invented fees or deadlines, rude or dismissive
wording, replies that are cut off or garbled. Flag "hallucination" for invented policies, "toxic" for
rudeness, "off-topic" for answers to another request, "harmful" for unsafe advice (asking for passwords).
Ties are fine when two replies are equally good or equally bad.
"""

DEMO_TAGS = ["harmful", "toxic", "hallucination", "off-topic"]
DEMO_TEMPERATURES = (0.7, 1.0, 1.3, 1.6)


def demo_model_dir() -> Path:
    """The committed demo model (override with RLHF_STUDIO_DEMO_MODEL)."""
    return Path(os.environ.get(DEMO_MODEL_ENV) or REPO_ROOT / "resources" / "demo_model")


def demo_settings(seed: int = 0):
    from core.models.generation import SamplingSettings

    # A wide temperature mix: the low ones give mostly clean replies, the high ones slips and mix-ups,
    # so each prompt's candidates spread out in quality.
    return SamplingSettings(
        temperature=1.0, top_p=0.98, top_k=50, max_new_tokens=112, seed=seed, temperatures=DEMO_TEMPERATURES
    )


@dataclass
class DemoReport:
    path: Path
    prompts: int = 0
    heldout: int = 0
    responses: int = 0
    unique_share: float = 0.0
    """Share of sampled candidates that differ from the prompt's other candidates."""
    distinct_4: float = 0.0
    """Distinct word 4-grams / all 4-grams over every stored candidate."""
    distinct_4_within_prompt: float = 0.0
    """The same, within each prompt's candidates, averaged over prompts."""
    seconds: float = 0.0
    generation: Any = None
    project: Any = None
    """The open project when `keep_open=True`, else None (closed)."""
    metrics: dict = field(default_factory=dict)


def create_demo_project(
    folder: str | Path,
    passphrase: str,
    *,
    n_prompts: int = 240,
    k: int = DEFAULT_K,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    model_path: Optional[str | Path] = None,
    batch_size: int = 96,
    keep_open: bool = False,
    kdf: Optional[dict] = None,
    threads: Optional[int] = 1,
    cancel: CancelToken = NEVER,
) -> Iterator[Progress]:
    """Job: a new encrypted project at `folder` with demo prompts, K candidates each, guidelines, tags.

    threads: torch CPU threads while generating (restored after; None = leave as is). One is the default:
    a ~1M-parameter model gains little from a second thread, and loses badly to OpenMP spin-waits when
    the machine is busy (the GUI, other programs).
    Returns a `DemoReport`. A cancelled run leaves a valid project with the prompts and whatever
    batches were finished; `generate_candidates` on it completes the rest.
    """
    import torch

    from core.demo.corpus import demo_prompts
    from core.demo.metrics import diversity
    from core.models.candidates import generate_candidates
    from core.models.loading import load_model
    from core.project import Project

    t0 = time.monotonic()
    model_dir = Path(model_path) if model_path else demo_model_dir()
    yield Progress(0, None, "creating project")
    project = Project.create(folder, passphrase, kdf=kdf) if kdf else Project.create(folder, passphrase)
    report = DemoReport(path=Path(project.path))
    try:
        texts = demo_prompts(n_prompts, seed=1234 + seed)
        rng = random.Random(seed)
        heldout = set(rng.sample(range(len(texts)), int(round(heldout_fraction * len(texts)))))
        with project.transaction():
            for i, text in enumerate(texts):
                project.add_prompt(text, split="heldout" if i in heldout else "train")
            project.set_setting("guidelines", GUIDELINES)
            project.set_setting("tags", list(DEMO_TAGS))
            project.set_setting("demo", {"model": str(model_dir.resolve()), "seed": seed})
        report.prompts, report.heldout = len(texts), len(heldout)
        cancel.raise_if_cancelled()

        yield Progress(0, None, "loading demo model")
        model, tokenizer = load_model(model_dir, device="cpu")
        gen = generate_candidates(
            project,
            model_dir,
            k=k,
            settings=demo_settings(seed),
            batch_size=batch_size,
            model=model,
            tokenizer=tokenizer,
            cancel=cancel,
        )
        previous_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            report.generation = yield from gen
        finally:
            torch.set_num_threads(previous_threads)

        groups = [[r.text for r in project.responses(pid)] for pid in project.prompt_ids()]
        report.responses = sum(len(g) for g in groups)
        div = diversity(groups)
        g = report.generation
        drawn = g.added + g.duplicates
        report.unique_share = g.added / drawn if drawn else 1.0
        report.distinct_4 = div["distinct_4"]
        report.distinct_4_within_prompt = div["distinct_4_within_prompt"]
        report.seconds = time.monotonic() - t0
        report.metrics = {
            "demo/unique_share": report.unique_share,
            "demo/distinct_4": report.distinct_4,
            "demo/distinct_4_within_prompt": report.distinct_4_within_prompt,
            "demo/seconds": report.seconds,
        }
        project.audit("demo_created", prompts=report.prompts, responses=report.responses)
        yield Progress(1, 1, "done", metrics=report.metrics)
    except BaseException:
        project.close()
        raise
    if keep_open:
        report.project = project
    else:
        project.close()
    return report
