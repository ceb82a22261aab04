"""Renders docs/training.md from the configuration dataclasses, so the options page cannot drift.

python -m core.training.options_doc > docs/training.md     (a test checks the file is current)
"""

from __future__ import annotations

import dataclasses

INTRO = """# Training options

Every training run is a core job (`core/jobs.py`) that the app runs on a worker thread and the CLI
runs with a progress bar. Runs, their configuration, metrics, samples and encrypted checkpoints are
recorded in the project; a cancelled or crashed run resumes from its last checkpoint with its step
counter, metric curves, optimizer state, KL coefficient and random state carried on.

Presets fill these options from the device and the data size; the app's "Advanced…" form and the CLI
flags set any of them, as overrides on top of the preset. Both build the config, run the pre-flight
check and start the run through the same operations (`core/ops/training.py`), so the same preset and
overrides give the same config in the app and on the command line. This page is generated from the code
(`python -m core.training.options_doc`).

## Reward model (`rlhf-studio train-reward`, Train page → Reward model)
A sequence-classification head (`num_labels=1`) on a local base model, trained with the Bradley–Terry
loss −log σ(r_chosen − r_rejected − margin) over every pair implied by each judgment (ranking tiers,
pairwise wins, ratings; ties give no pair). Each response is scored once per forward pass and all of a
prompt's pairs are formed from those scores. Training and validation are split by prompt; held-out
prompts are never trained on. The score head reads the average of two summaries of the final hidden
states: the last token, and their sum over the reply's tokens, divided by a constant (16), leaving out
every token that ends a run of four tokens the reply already said (`pooling=distinct_sum_last`): each
thing a reply says counts once whatever the reply's length, and saying it again adds nothing. With every
token summed (`sum_last`, the default until 2026-12-07) a policy can raise its reward by repeating what
the reward model likes, and PPO did: for the plain expert 44 of 48 tuned held-out replies repeated "We
are always working to improve our service." two to four times (×1.75 the base's length); with repeats
left out, 2 of 48 (×1.52: it adds other filler sentences, which that expert does not mind). Held-out
accuracy, Balanced, the same loops with only the reading changed (2026-12-07), `sum_last` →
`distinct_sum_last`: demo 0.896 → 0.900, plain 0.898 → 0.907, no_filler 0.879 → 0.887, concise 0.881 →
0.877, warm 0.902 → 0.896 (mean 0.891 → 0.893). Only 3% of the demo's 1,440 candidates say a four-token
run twice, so most of those differences are one run's noise (about ±0.012 on ~650 pairs): the reading is
kept for what it takes away from the policy, not for accuracy. Tried instead and not kept: a third kind
of contrast pair, the best reply beating itself with a sentence said twice, which also stopped the
repeats (0 of 48) but cost the reward model 0.02 (demo 0.878, plain 0.879). Summing rather than
averaging (`sum_last` against `both`, the mean over the reply with the last token, 2026-12-06) had
gained 0.027 on average (demo 0.899 against 0.855, plain 0.893 against 0.871). The sum also reads
length: where length only loosely goes with what the expert wants it needs more steps (on random replies
where an apology wins, 0.68 validation accuracy in four epochs against 1.00 for `both`; eight suffice),
which Balanced gives even a small project (at least 160 steps). `both`, `sum`, `mean` or `last` are the
other readings; runs saved before the option existed read the last token. Each training prompt also gets
two
pairs its expert never judged (`off_topic_pairs`): its best reply beats the best reply to an unrelated
request, shown under it. They assume only that an answer to the request asked beats an answer to another
one, and they teach the model to read the request: from a few hundred rankings of replies to the same
request it hardly learns to (validation and held-out prompts never get these pairs). On the demo they
lift held-out accuracy by 0.01–0.06 for every simulated expert, even those indifferent to the request
(mean gain +0.037; `off_topic_pairs=1` gains +0.026). Where replies are unrelated to their requests
(random or templated text) the assumption fails and they are noise: set `off_topic_pairs=0`. After
training, rewards are centred (mean 0 on the training responses) and their scale is recorded.

Presets: **Quick**, **Balanced**, **Thorough** (`core/training/presets.py`) set the length, learning
rate and batch by model size and device, and switch to LoRA when a full fine-tune will not fit. A
pre-flight check refuses too little data ("only 12 pairs: rank more") or a model that will not fit.
A tenth of the training prompts is kept for validation (`val_fraction=0.10`; it was 0.15). Until that
share holds 50 prompts (`VALIDATION_PROMPTS_TO_CHOOSE`, about 450 ranked prompts) a run trains to the
end of its decayed learning rate and keeps its last weights (`early_stopping_patience=0`,
`restore_best=false`): on ~20 validation prompts the best evaluation is mostly chance, and choosing by
it cost up to 0.03 held-out accuracy (sum reading, demo / concise / plain / no_filler: 0.891 / 0.856 /
0.895 / 0.872 at 0.15 with the best weights; 0.899 / 0.866 at 0.10 with them; 0.899 / 0.883 / 0.893 /
0.885 at 0.10 with the last). Larger projects stop early and keep the best weights.

"""

POLICY = """
## Policy (`rlhf-studio train-policy`, Train page → Policy)
One Algorithm field selects:
- **PPO** — rollouts at temperature T; reward = reward-model score at the end of the response minus a
  per-token β·KL(policy‖reference) (adaptive β after Ziegler et al., or fixed); a penalty for responses
  that never emit EOS; GAE (γ=1, λ=0.95) with whitened advantages; clipped policy (ε=0.2) and value
  losses over several epochs of minibatches. The critic (`value_init`) starts as a copy of the reward
  model (InstructGPT) by default (`auto`) when the reward model reads the policy's tokens and has at most
  300M parameters (the copy trains in full, ~16 bytes a parameter); otherwise, or with `head`, it is a
  value head on the policy that starts from nothing. A critic that already knows what the reward favours
  gives useful advantages from the first step: on the demo it lifted PPO's blind win rate by 0.08–0.18
  for every simulated expert (the run's summary says which critic it used).
- **RLOO** and **GRPO** — K samples per prompt and a group baseline (leave-one-out mean, or the group's
  mean and standard deviation); no critic.
- **DPO** — directly from the preference pairs, with reference log-probs computed once, β and optional
  label smoothing; no reward model needed.

Training modes: **LoRA** (peft; the reference is the same model with adapters disabled, so no second
copy is held), **freeze** (train the top layers), or **full**. The export (`rlhf-studio export-model`)
writes a standard Hugging Face folder, LoRA merged or as an adapter, after an explicit plaintext
confirmation.

Reply length: `max_new_tokens` = 0 (every preset) is automatic: the run measures the project's
candidate replies in the policy's tokens and takes their 95th percentile plus room for EOS, rounded up
to 16 (32 to 512); the run records the number it used. A limit shorter than the replies the expert
ranked would cut good replies off, and the missing-EOS penalty would then teach the policy that short
is better.

Presets (`core/training/policy_config.py` `PRESETS`). Their learning rate is RLOO's, GRPO's and DPO's;
PPO's is twice it (`ALGO_LEARNING_RATE_SCALE`; Balanced: 2e-4), unless you set one. At 16 prompts a step
a PPO step makes `ppo_epochs` × batch / minibatch = 8 optimizer steps on its 16 rollouts where RLOO
makes 32 on its 16 × `rloo_k` = 64, so at RLOO's rate PPO moved the policy too little in the same 100
steps (measured below). On Balanced, PPO also takes 32 prompts a step instead of 16
(`ALGO_PRESET_OVERRIDES`): it samples one reply a prompt where RLOO samples four, and at 16 it found
less of what the reward model likes (no_filler 0.823 against RLOO's 1.000; measured below). It costs
about twice the policy stage, so Quick keeps its speed and Thorough, already at 32, its memory.

| preset | overrides |
| --- | --- |
"""

HYBRID = """
## Hybrid reward
The reward model's score (divided by its recorded scale) plus weighted automatic terms the expert can
switch on. Each component is logged as `reward/<name>` beside `reward/mean`.

"""

METRICS = """
## Metrics
Reward model: `loss/train`, `accuracy/train`, `margin/train`, `lr`, `grad/norm`,
`throughput/pairs_per_s`, `throughput/tokens_per_s`, and on evaluations `loss/val`, `accuracy/val`,
`margin/val`.

Policy: `reward/mean` (and each component), `kl/mean`, `kl/beta`, `policy/entropy`, `loss/policy`,
`loss/value`, `policy/clipfrac`, `policy/approx_kl`, `response/length`, `response/eos_rate`,
`perf/samples_per_s`, `monitor/length_ratio`, `monitor/truncated` (and once, at step 0,
`monitor/base_length`, `monitor/base_truncated`); every few steps a table of samples (prompt, response,
reward parts). Learning curve: `curve/prompts`, `curve/accuracy`.
"""

MONITORS = """
## Reward-hacking monitors (Train page → Policy, `rlhf-studio train-policy`)
A policy can raise the reward model's score without getting better in your eyes: it finds what the
reward model over-rates (very short or very long replies, replies that never end) instead of what you
want. The Policy tab charts four signs of that live, and `train-policy` prints them beside its progress
bar (`core/training/monitors.py`):

| monitor | what it is |
| --- | --- |
| `monitor/length_ratio` | mean reply length over the base model's mean length on the same training prompts ({baseline} of them, sampled as the run samples, once at the start, before any update); 1.0 = as long as the base |
| `monitor/truncated` | share of replies cut off at `max_new_tokens` without an EOS (the base's share beside it) |
| `kl/mean` | how far the policy has moved from the base model (nats per reply) |
| `monitor/agreement` | on fresh replies you judged blind (**Check with the expert…**), the share of pairs the reward model orders as you did |

**Check with the expert** (Policy tab, during or after a run; `rlhf-studio expert-check PROJECT RUN`):
for {check} training prompts, one reply from the policy's latest checkpoint and one from the base model
are shown as A and B, in random order, source hidden. Your choices are ordinary pairwise judgments, so
they also teach the next reward model. When you close the window the reward model scores the pairs and
the agreement appears on the chart (`expert-check ... --agreement` in the CLI).

**When a warning fires.** The rule compares the last {window} steps with the first {window}: a warning
shows (a red banner on the Policy tab, a `warning at step N` line in the CLI, and the run's summary) when
the reward has risen by more than {rise} while
- replies shrank below {collapse:.0%} of the base's length (**length collapse**): the policy is likely
  gaming the reward model with short replies. Read the samples. Check with the expert, retrain the
  reward model with those rankings, then continue (or start again) against the new reward run.
  Meanwhile a stronger KL penalty (higher `kl_coef`, lower `kl_target`) or a length term keeps the policy
  nearer the base.
- replies grew beyond {explosion:.0f}× the base's length (**length explosion**): the reward model may
  favour length for its own sake. Check with the expert and retrain; or add a length term with a target
  (`length_target`, `length_weight`) and a stronger KL penalty.
- the share cut off at the limit rose more than {trunc:.0f} percentage points above the base's (**truncation**): check the
  samples; if they are good but long, raise `max_new_tokens`; otherwise keep or raise
  `missing_eos_penalty`, add the repetition term, and rank a few such replies.

It also warns, whatever the reward does, when the reward model agrees with your fresh judgments on less
than {agree:.0%} of at least {pairs} pairs, or {drop:.0%} less than on your held-out pairs
(**agreement**): a higher reward no longer means better replies. Retrain the reward model (it now has
your judgments of the policy's own replies) and continue against it; stop the run if its samples look
worse than the base's. With the adaptive KL controller, KL beyond {kl:.0f}× `kl_target` warns too
(**KL**): lower the learning rate or `kl_target`, or raise `kl_coef`.

## Did the run change the model?
`evaluate` generates greedy replies from both models on the held-out prompts. When the tuned model
writes exactly the base's reply on at least {same:.0%} of them, the Evaluate page, the report (JSON, PNG,
PDF) and the CLI's `evaluate` and `report` say plainly that the run barely changed the model, and what
to try: rank more prompts, train longer (more steps, or the Thorough preset), or a higher learning
rate or KL target.

## How many rankings are enough? (Train page → Reward model, `rlhf-studio learning-curve`)
The learning curve re-fits the reward model, with the reward trainer itself and the Quick preset's
settings for that many prompts, on nested {fractions} shares of the ranked prompts, and measures each
fit on your held-out prompts (or, with fewer than {min_eval} ranked held-out prompts, on a fixed share of
the training prompts no fit trains on). From the slope of accuracy per doubling of the ranked prompts
over the last points it says roughly how many more rankings would bring it near {target:.0%}, or that
the curve has levelled off (then more rankings of the same kind add little: check your consistency, try
the Thorough preset or a larger base model). The figures are small re-fits: a rough guide.
"""


def _monitors() -> str:
    from core.evaluation.change import BARELY_CHANGED_SHARE
    from core.training import learning_curve as LC
    from core.training import monitors as M
    from core.training.expert_check import DEFAULT_PROMPTS

    return MONITORS.format(
        baseline=M.BASELINE_PROMPTS,
        check=DEFAULT_PROMPTS,
        window=M.WINDOW,
        rise=M.REWARD_RISE,
        collapse=M.LENGTH_COLLAPSE,
        explosion=M.LENGTH_EXPLOSION,
        trunc=100 * M.TRUNCATION_RISE,
        agree=M.AGREEMENT_LOW,
        pairs=M.AGREEMENT_MIN_PAIRS,
        drop=M.AGREEMENT_DROP,
        kl=M.KL_FACTOR,
        same=BARELY_CHANGED_SHARE,
        fractions="/".join(f"{f:.0%}" for f in LC.FRACTIONS),
        min_eval=LC.MIN_EVAL_PROMPTS,
        target=LC.TARGET_ACCURACY,
    )


PLANS = """
## Memory plans, several GPUs, faster rollouts
`quantization` and `gradient_checkpointing` (reward model and policy alike) form the run's memory plan.
With `quantization=auto` the pre-flight estimates each plan from the model's shape (nothing loads) and
takes the first that fits in 90% of the free memory: full precision; full precision + gradient
checkpointing; 4-bit NF4 base + LoRA + checkpointing (QLoRA, LoRA runs only). The run records the
concrete plan and its summary says which (`memory_plan`), so a resume loads the model the same way.
`4bit`/`8bit` need a CUDA GPU and `bitsandbytes` (`pip install 'rlhf-studio[gpu]'`); elsewhere the
pre-flight says a 4-bit plan is impossible there and, with `auto`, falls back to full precision or
refuses with what it tried. 8-bit is only used when asked for by name. `reward_device=cpu` keeps a
PPO/RLOO reward model off the GPU. Which plan for which machine: docs/models.md.

`gpus` > 1 trains the reward model or DPO data-parallel (`--gpus N`): one worker process per GPU
(NCCL), or gloo worker processes on a CPU; the losses and weights equal one process on the same global
batch. What the workers see: docs/security.md.

`rollout_engine`: `static` (default; static KV cache, CUDA-graph decode on a GPU), `compiled` (the same
decode step under `torch.compile`), or `vllm` when vLLM is installed (weights synced before every
rollout batch; CUDA only, not exercised in CI).
"""


def _table(cls, docs: dict[str, str]) -> str:
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = ""
        if dataclasses.is_dataclass(default):
            default = "see below"
        rows.append(f"| `{f.name}` | `{default!r}` | {docs.get(f.name, '').replace('|', '/')} |")
    return "\n".join(rows) + "\n"


MEASURED = """
## What the defaults do on the demo (`python bench/eval_loop.py --defaults`)
Every stage is the `rlhf-studio` command with its defaults (Balanced presets, PPO, LoRA, automatic
reply length, greedy blind set of the 48 held-out prompts); a simulated expert from `bench/experts.py`
ranks the 192 training prompts' 6 candidates and judges the blind pairs. 2-core CPU, one torch thread,
two runs side by side. "Ceiling" is the win rate of always writing the expert's favourite stored
candidate (`candidate_ceiling`): where the base's greedy reply is already the best candidate, only a
reply better than every candidate can win.

The defaults as they are (2026-12-07: `pooling=distinct_sum_last`; PPO at 32 prompts a step on Balanced;
PPO's and RLOO's minibatches trimmed to their padding). Every algorithm on the same reward model; "PPO 16"
is PPO at the 16 prompts a step it took before that day:

| expert | reward model held-out accuracy | PPO blind win rate (ties as ½) [95% CI] | PPO won / tied / lost, length | PPO 16 | RLOO, length | ceiling |
| --- | --- | --- | --- | --- | --- | --- |
| demo (facts, polite, not vague) | **0.900** (671 pairs) | **0.948** [0.846, 0.984] | 43 / 5 / 0, ×1.70 | 0.938 | **1.000**, ×2.09 | 0.885 |
| warm (tone first) | 0.896 (682 pairs) | **1.000** [0.926, 1.000] | 48 / 0 / 0, ×1.83 | 0.938 | **1.000**, ×2.04 | 0.906 |
| no_filler (filler sentences cost) | 0.887 (688 pairs) | **1.000** [0.926, 1.000] | 48 / 0 / 0, ×1.66 | 0.823 | **1.000**, ×1.81 | 0.760 |
| concise (the shorter the better) | 0.877 (715 pairs) | 0.740 [0.601, 0.843] | 23 / 25 / 0, ×1.09 | 0.771 | not run | 0.698 |
| plain (facts, indifferent to tone) | **0.907** (580 pairs) | 0.625 [0.484, 0.748] | 15 / 30 / 3, ×1.62 | 0.729 | not run | 0.729 |

"Tied" counts "both bad" too (both replies scored −2 or less). Seconds per stage for the demo expert,
one loop alone with two torch threads (as `rlhf-studio` runs by default): demo project 19, reward model
86, PPO 341, blind set 3, report 1 (7.5 minutes). Two loops side by side on one thread each: PPO's
policy stage 389–569 s (197–294 s at 16 prompts a step), RLOO's 584–615 s (it was 800–900 before the
padding trim). The learning test on these defaults passes (held-out expert score −0.38 → 3.71; 3.27 with
PPO 16). Where PPO 16 lost three prompts for demo and for warm, each was one request the held-out set
asks three times (warm: an invoice request answered with the cancellation policy). Thirty-two prompts a
step won on the mean over the five experts (0.840 → 0.863) and lost fewer prompts in all (7 → 3), and it
brought PPO level with RLOO for warm and no_filler; it cost plain 0.104 (9 prompts both bad, 3 lost
against PPO 16's 1: likely its reward model's taste for filler the expert is indifferent to, followed
further) and concise 0.031; on demo PPO stays 0.052 behind RLOO. With `sum_last` the same morning
(padding trim included, PPO 16): reward model demo 0.896, plain 0.898, no_filler 0.879, concise 0.881;
PPO demo 1.000, plain 0.760 (44 of 48 replies repeating a sentence, ×1.75), no_filler 0.844, concise
0.771; stages 18, 122, 244, 2, 1 s.

Why plain and concise stay below 0.80 (PPO 16): ties. For plain, 11 of the 48 base replies already score
the expert's maximum (4.0: both facts, nothing vague, nothing invented), so they can only tie; 13 more
score 3.0 or 2.0, most of it lost to an order number or product the customer never mentioned, and none
of the demo's 79 candidates that quote an order number quote the request's own (the demo model does not
copy one). Concise calls replies within 0.25 even (four words at its 0.06 a word), and on the 22 prompts
PPO 16 tied the base already gives both facts in 23–32 words: the tuned replies there are within four
words of them.

Earlier (2026-12-04, pooling `both`; the policy stage rerun with `train-policy` at β 0.01 on each loop's
project and reward model):

| expert | reward model held-out accuracy | blind win rate (ties as ½) [95% CI] | won / tied / lost | ceiling |
| --- | --- | --- | --- | --- |
| demo (facts, polite, not vague) | 0.855 (671 pairs) | **1.000** [0.926, 1.000] | 48 / 0 / 0 | 0.885 |
| warm (tone first) | 0.893 (682 pairs) | **1.000** [0.926, 1.000] | 48 / 0 / 0 | 0.906 |
| no_filler (filler sentences cost) | 0.850 (688 pairs) | **0.823** [0.691, 0.906] | 31 / 17 / 0 | 0.760 |
| concise (the shorter the better) | 0.855 (715 pairs) | **0.802** [0.667, 0.894] | 29 / 19 / 0 | 0.698 |
| plain (facts, indifferent to tone) | 0.871 (580 pairs) | 0.771 [0.635, 0.867] | 26 / 22 / 0 | 0.729 |

Summing the reply's hidden states instead of averaging them (`pooling=sum_last`, 2026-12-05, the same
loop with only that changed): reward model demo 0.891, warm 0.903, plain 0.895, no_filler 0.872,
concise 0.856; PPO win rates demo 1.000, warm 1.000, no_filler 0.823, plain 0.771, concise 0.771 (one
and a half prompts of 48 more tied than with `both`, none lost; replies ×1.08 the base's length against
×0.95); seconds per stage on the demo expert 18, 122, 229, 2, 1 (6.2 minutes). It became the
default on 2026-12-06 together with the validation share of 0.10 and the last weights (Presets, above);
then the learning test on the defaults passes (held-out expert score −0.38 → 3.40) and the full loop
gave, PPO / RLOO blind win rate (reward model): demo 0.896 (5 lost) / 1.000 (0.896), warm 1.000 /
1.000 (0.902), no_filler 0.823 / 1.000 (0.879), concise 0.771 / 0.771 (0.881), plain 0.760 / 0.698
(0.898); PPO replies ×1.13–1.72 the base's length, so PPO is not within 0.05 of RLOO on demo and
no_filler. The demo loop's stages took 31, 177, 356, 3 s (two loops side by side). A divisor of 8 (demo
0.896, concise 0.860, no_filler 0.858) and the sum alone (demo 0.884) were no better; on the demo,
keeping the last weights rather than the best validation ones gave 0.890, and a validation share of
0.10 instead of 0.15 gave 0.899 (plain, with `both`: 0.884 against 0.871).

PPO's learning rate is twice the preset's (2e-4 on Balanced; 2026-12-07, the same loop with only that
changed, PPO only, reward models as above): demo 0.896 → **1.000** (48 won; KL 9.7, replies ×1.75 the
base's length: they add the request's facts and polite phrases), warm 1.000 → 1.000 (×1.9), plain
0.760 → 0.760 (25 won, 23 tied, ×1.69), no_filler 0.823 → 0.823 (31 won, 17 tied), concise 0.771 → 0.740
(23 won, 25 tied, none lost, ×1.11); mean over the five 0.850 → 0.865. PPO is now within 0.05 of RLOO
for every expert but no_filler (0.823 against 1.000). At 3e-4 no_filler fell to 0.740 and the KL went
past three times its target (18 nats at step 48, the product's own warning). The demo loop's stages took
24, 158–174, 304–391, 3, 1 s with two loops side by side (under 10 minutes). The learning test on the
defaults passes: held-out expert score −0.38 → 3.28.

The initial KL coefficient is 0.01 (it was 0.02). With the same reward models, at 0.02 the win rates
were demo 1.000, warm 1.000, no_filler 0.771, plain 0.771 and concise 0.698 (PPO then lost 6 of 48
prompts to the concise expert and trailed RLOO's 0.771 by 0.073); at 0.01 concise reaches 0.802 with
none lost and replies ×0.95 the base's length, no_filler 0.823, and demo, warm and plain stay where they
were. A learning rate of 3e-4 instead (β 0.02) made concise worse (0.656, 9 lost). The learning test on
the defaults (`tests/test_policy_demo_loop.py`) passes at 0.01: the demo expert's mean score on its
held-out prompts −0.38 → 2.07 (2.38 at 0.02).

Six candidates a prompt, not four (`core.models.DEFAULT_K`, for the demo and for Generate): a ranking
of six replies implies 15 comparisons, one of four only 6, for not much more reading. From the same
192 ranked prompts the reward model's held-out accuracy rose for every expert: demo 0.778 → 0.855,
warm 0.860 → 0.893, plain 0.798 → 0.871, no_filler 0.770 → 0.850, concise 0.777 → 0.855 (held-out
pairs are now among six candidates too, so there are more of them, and more close ones). Over three
seeds (which also change the validation split) the demo expert's reward model scored 0.855, 0.849
and 0.890. Eight candidates gave 0.830 on its harder held-out set of 1,256 pairs. The blind win rates
hardly moved at β 0.02 (demo and warm stay at 1.000; plain 0.760 → 0.771, no_filler 0.771 → 0.771, concise
0.729 → 0.698), and the learning test's held-out expert score rose from 0.878 to 2.38 (base −0.38).
The demo project takes 17–37 s to create instead of 17–23, and the reward model 120–150 s instead
of about 112.

Before that (four candidates) the initial KL coefficient went from 0.05 to 0.02 (same adaptive controller, target 6). At
0.05 the penalty holds PPO at half its KL budget for the whole run (final KL 3.0 against the target 6): demo 0.750, warm 1.000, no_filler 0.823, concise 0.760, plain 0.740 (mean 0.815). At 0.02 the
policy moves further within the same budget: the demo expert's blind win rate goes from 0.750 to 1.000
(replies ×1.66 the base's length, but every one of the 48 judged better: the added sentences carry the
request's facts and polite phrases, not filler), and the 96-prompt learning test on the defaults
(`tests/test_policy_demo_loop.py`) passed twice with identical figures (reward-model validation 0.742;
reward curve −0.075 over the first ten steps → 1.463 over the last ten; final KL ≈ 10; the demo
expert's mean score on the test's held-out prompts −0.385 → 0.878). The price: concise falls by 0.03 and
no_filler by 0.05, both within their confidence intervals, while the mean over the five rises from 0.815 to 0.852.

What changed before that (reward model 0.73–0.85; win demo 0.875, warm 0.896, plain 0.625, no_filler
0.479, concise 0.344): the off-topic contrasts (above) raised the reward model's accuracy by 0.01–0.06
for every expert, and PPO's critic now starts from the reward model (`value_init=auto`). With the
contrasts alone, PPO's win rates were warm 0.958, plain 0.698, concise 0.677, no_filler 0.646 and demo
0.625 (the policy moved less: KL ≈ 2 against 5.4); the reward-model critic then lifted every one (demo
0.750, KL 3.0). The tuned models almost never lose (at most three of 48 prompts) and beat the best
stored candidate's ceiling for every expert: what holds plain and concise below 0.8 is ties, replies the
expert scores exactly as the base's.

PPO against RLOO (the best of the others here) on the same reward models (six candidates;
`train-policy --algo rloo` on each loop's project, at the β 0.02 of that time): RLOO demo 1.000, warm
1.000, plain 0.771, concise 0.771, no_filler 0.760, against PPO's (β 0.01) 1.000, 1.000, 0.771, 0.802,
0.823: PPO is within 0.05 of the best algorithm for all five. RLOO samples 4 replies a prompt, four
times PPO's rollouts, and its policy stage took 405–615 s against PPO's 190–350 s (sharing the 2 cores
with another run): as the default it would take the loop past 10 minutes on this machine.

What was not met then (2026-12-04, pooling `both`): the reward model's held-out accuracy was 0.85–0.89.
With six candidates the demo expert's model is right on 93–96% of the pairs whose expert scores differ
by 4 or more (317 of 671), 85–86% where they differ by 2 to 4, 74–79% by 1 to 2 and 68–76% by less than 1 (one polite phrase
more or less). Tried on six candidates and not kept: a learning rate of 2e-3 (0.821) or 3e-4 (0.759 on
four), the bottom two layers frozen (0.778), a margin from the tier distance (0.846), twice the steps
(0.869 against 0.855, at half again the time), a demo model trained four times longer (0.733 on four
candidates, against 0.778) and, for comparison, one trained from random weights (0.703). Averaging two
or three reward models trained with different seeds gives 0.873 and 0.881, for two or three times the
training time. Before six candidates (four), with the hidden states summed over the reply instead of
averaged: +0.01–0.015, not kept.

Seconds per stage (demo expert, PPO, six candidates, two loops and a reward-model experiment sharing the 2
cores): demo project 17, reward model 150, PPO 279, blind set 3, report 2 — 7.5 minutes in all (four
candidates: 18, 112, 355, 4, 2 — 8.2 minutes; at β 0.05, one
loop with the tests on the other core: 17, 118, 303, 3, 1 — 7.4 minutes). The reward-model critic costs half again the value head's policy time (310 s against 206 s,
two loops side by side). The length monitor fires on runs where the
policy shortens replies ("Length collapse"), which is its job: use Check with the expert, rank those
replies, retrain the reward model and continue. A stronger fixed KL penalty (`kl_coef=0.2`) lifted the
concise expert from 0.25 to 0.41 but dropped the demo expert from 0.90 to 0.68 (earlier reward models),
so it is not the default.

Tried and not kept: a second judge in the reward (a reward-model committee, the references' remedy for
over-optimisation): the queue's word-level Bradley–Terry model (`core/queue_model.py`) fit on the same
rankings. On its own it is the more accurate judge from 192 ranked prompts (held-out pairwise accuracy
demo 0.82, concise 0.78, plain 0.79, no_filler 0.78 against the reward model's 0.73–0.75), but added to
the reward with equal weight it made PPO worse: demo 0.70 (replies ×1.6 longer: it learned the words,
and the policy repeated them), concise 0.31 (it too ranks the vague reply first on 45 of 48 prompts).
"""


def render() -> str:
    from core.training.hybrid_reward import HybridRewardConfig
    from core.training.policy_config import PRESETS, PolicyConfig, field_docs
    from core.training.reward import RewardConfig

    presets = "".join(
        f"| {name} | {', '.join(f'`{k}={v!r}`' for k, v in values.items())} |\n" for name, values in PRESETS.items()
    )
    return (
        INTRO
        + _table(RewardConfig, RewardConfig.field_docs())
        + POLICY
        + presets
        + "\n"
        + _table(PolicyConfig, field_docs(PolicyConfig))
        + HYBRID
        + _table(HybridRewardConfig, field_docs(HybridRewardConfig))
        + PLANS
        + _monitors()
        + METRICS
        + MEASURED
    )


if __name__ == "__main__":
    print(render(), end="")
