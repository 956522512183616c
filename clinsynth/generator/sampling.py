"""Ancestral sampling of synthetic stays from a trained :class:`StayModel`, then back to a Cohort.

Statics field by field, then the grid step by step: within a step the measurement mask is drawn
(per variable given the history; the variables of one schema panel, which a single reading or
blood sample yields, are measured as one event: its most-measured member's head decides and the
others come with it at their released share, module panels; and the labs of different panels
are tied by the calibrated blood-draw coupling: module draws), then the values of the measured
variables in schema order (each sees the co-measured ones before it, and the schema's
cross-variable rules bound it given them: module constraints), then the outcomes given the
stay. The uniforms behind the measurement decisions and the statics' and outcomes' classes are
stratified across the stays drawn together (module stratified): each stay is drawn as before,
but a cohort's observation rates and class counts swing less from one sample to the next.
Everything is drawn from one seeded ``torch.Generator`` (and one numpy generator for within-bin
/ within-step jitter), so the same model and seed give the same cohort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from clinsynth.cohort import Cohort
from clinsynth.generator import draws, panels, stratified
from clinsynth.generator.constraints import StepConstraints
from clinsynth.generator.encoding import Encoding, static_groups
from clinsynth.generator.features import History, stay_summary
from clinsynth.generator.model import StayModel
from clinsynth.schema import Schema

SAMPLE_CHUNK = 4096  # stays sampled together (bounds memory for very large n)
REDRAW_SEED = 7919  # offset of the seed of the rule redraws' own stream (module constraints)


@dataclass
class RawSample:
    """Model-space draws: static class codes ``[N,S]``, values and mask ``[N,T,V]``, and the
    statics codes the series were drawn from (their severity class is the drawn one; ``codes``
    carry the score of the stay actually drawn); ``rules``: how often the schema's rules had to
    redraw a value (:meth:`constraints.RuleTally.to_dict`)."""

    codes: np.ndarray
    x: np.ndarray
    m: np.ndarray
    drawn: np.ndarray | None = None
    rules: dict | None = None


@torch.no_grad()
def sample_fields(
    model: StayModel,
    encoding: Encoding,
    codes: np.ndarray,
    fields: range,
    gen: torch.Generator,
    summary: torch.Tensor | None = None,
    rates: list[np.ndarray | None] | None = None,
    groups: list[np.ndarray | None] | None = None,
) -> None:
    """Draw ``codes[:, k]`` for k in ``fields`` in order, each given the earlier ones.

    ``rates`` (one class-probability vector per field, or None): the draws are calibrated so
    that, on average over the drawn stays, each class has that probability; where ``groups``
    gives the field a class -> group map, each group of classes has it.
    """
    device = model.is_gauss.device
    for i, k in enumerate(fields):
        cond = torch.from_numpy(encoding.static_condition(codes)).to(device)
        logits = model.fields.logits(k, cond, summary)
        if rates is not None and rates[i] is not None:
            target = torch.as_tensor(rates[i]).to(logits)
            group = None if groups is None or groups[i] is None else groups[i]
            index = None if group is None else torch.as_tensor(group, device=logits.device)
            logits = logits + calibration_shift(logits, target, index)
        probs = torch.softmax(logits, dim=-1)
        codes[:, k] = stratified.categorical(probs, gen).cpu().numpy()


def calibration_shift(
    logits: torch.Tensor,
    target: torch.Tensor,
    groups: torch.Tensor | None = None,
    rounds: int = 50,
) -> torch.Tensor:
    """Per-class logit offsets making the mean predicted class probabilities ``target``; with
    ``groups`` (each class's group), the mean probability of each group ``target[group]``, one
    offset shared by a group's classes (their shape within it is the model's).

    Calibration-in-the-large: the outcome heads rank stays well but, trained under DP noise and
    clipping and applied to synthetic stays, their average drifts (a death rate of 7% instead of
    14%). The target rates come from the DP release (post-processing: no extra privacy cost).
    """
    shift = torch.zeros_like(target)
    target = target.clamp(min=1e-6)
    for _ in range(rounds):
        class_shift = shift if groups is None else shift[groups]
        mean = torch.softmax(logits + class_shift, dim=-1).mean(dim=0)
        if groups is not None:
            mean = torch.zeros_like(target).index_add_(0, groups, mean)
        shift = shift + torch.log(target / mean.clamp(min=1e-12))
    return shift if groups is None else shift[groups]


@torch.no_grad()
def sample_series(
    model: StayModel,
    cond: torch.Tensor,
    gen: torch.Generator,
    constraints: StepConstraints | None = None,
    mask_source: tuple[int, ...] | None = None,
    blood: tuple[bool, ...] = (),
    panel_plan: panels.PanelPlan | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``x, m [B, T, V]`` step by step given the statics conditioning ``cond [B, C]``,
    each step's values kept within ``constraints`` (none: the model's draws as they are) and
    variable v measured when the uniform of ``mask_source[v]`` falls below its probability
    (none: independent uniforms), the ``blood`` variables' uniforms tied by the model's draw
    coupling (module draws); with a ``panel_plan`` a panel's followers are measured with its
    lead instead (module panels)."""
    batch, device = cond.shape[0], cond.device
    n_vars = model.n_vars
    hist = History(batch, model.value_scale, model.value_shift, model.n_steps)
    cache = [b.to(device) for b in model.new_cache(batch)]
    w_value = model.value_made.masked_weight.T  # row u: effect of input u
    gauss, binary = model.is_gauss.bool().tolist(), model.is_binary.bool().tolist()
    cat_size = dict(zip(model.cat_index, model.cat_sizes, strict=True))
    in_blood = torch.tensor(blood or [False] * n_vars, device=device)
    rho = float(model.draw_coupling)
    xs, ms = [], []
    for t in range(model.n_steps):
        per_var, glob = hist.features()
        out = model.step(per_var, glob, cond, cache, t)
        logit, params = out[..., 0], out[..., 1:]
        u = stratified.uniforms(batch, n_vars, gen, device)  # fewer cohort-level swings
        if mask_source is not None:
            u = u[:, list(mask_source)]
        u = draws.couple(u, in_blood, rho, gen)
        m_t = (u < torch.sigmoid(logit)).float()
        if panel_plan is not None and panel_plan.followers:
            m_t = panels.follow(m_t, panel_plan, stratified.uniforms(batch, n_vars, gen, device))
        logw, mu, log_sigma = model.mixture(params, per_var, torch.zeros_like(logit))
        shift = torch.zeros(batch, n_vars, device=device)
        x_t = torch.zeros(batch, n_vars, device=device)
        for v in range(n_vars):
            if gauss[v]:
                comp = torch.multinomial(logw[:, v].exp(), 1, generator=gen).squeeze(1)
                rows = torch.arange(batch, device=device)
                noise = torch.randn(batch, generator=gen, device=device)
                mean = mu[rows, v, comp] + shift[:, v]
                x_t[:, v] = mean + noise * log_sigma[rows, v, comp].exp()
                limits = None if constraints is None else constraints.limits(v, x_t, m_t)
                if limits is not None:
                    x_t[:, v] = constraints.enforce(
                        v, x_t[:, v], limits, logw[:, v], mu[:, v] + shift[:, v : v + 1],
                        log_sigma[:, v].exp(),
                    )  # fmt: skip
            elif binary[v]:
                u = torch.rand(batch, generator=gen, device=device)
                x_t[:, v] = (u < torch.sigmoid(params[:, v, 0])).float()
            else:
                probs = torch.softmax(params[:, v, : cat_size[v]], dim=-1)
                x_t[:, v] = torch.multinomial(probs, 1, generator=gen).squeeze(1).float()
            x_t[:, v] *= m_t[:, v]
            x_in = (x_t[:, v] * model.value_scale[v] + model.value_shift[v]) * m_t[:, v]
            shift += x_in.unsqueeze(1) * w_value[v]
        hist.update(x_t, m_t)
        xs.append(x_t)
        ms.append(m_t)
    return torch.stack(xs, dim=1), torch.stack(ms, dim=1)


def sample_raw(
    model: StayModel,
    encoding: Encoding,
    n: int,
    seed: int,
    outcome_rates: list[np.ndarray] | None = None,
    severity_rates: np.ndarray | None = None,
    static_rates: list[np.ndarray | None] | None = None,
    measurement_rates: np.ndarray | None = None,
) -> RawSample:
    """``n`` stays in model space, deterministic in ``seed``; outcomes, the severity score and
    the statics with a rate vector in ``static_rates`` (per static field, None: drawn as the
    model has them) are calibrated to the rates given (see ``sample_fields``). With the
    released ``measurement_rates`` [V], each schema panel is measured as one event, its
    members at their own rates (module panels); without, its members share one uniform."""
    device = model.is_gauss.device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    model.eval()
    codes = np.array([[f.missing_class for f in encoding.statics]] * n, dtype=np.int64)
    rates = list(static_rates or [None] * encoding.n_static)
    groups = [None if r is None else static_groups(f.n_classes) for r, f in
              zip(rates, encoding.statics, strict=False)]  # fmt: skip
    rates[encoding.severity_index] = severity_rates
    groups[encoding.severity_index] = None
    sample_fields(model, encoding, codes, range(encoding.n_static), gen, rates=rates, groups=groups)
    scale, shift = model.value_scale, model.value_shift
    xs, ms, summaries = [], [], []
    constraints = StepConstraints(encoding.bounds, encoding.variables, seed + REDRAW_SEED)
    plan = panels.plan_if_any(encoding.mask_source, measurement_rates)
    for start in range(0, n, SAMPLE_CHUNK):
        cond = torch.from_numpy(encoding.static_condition(codes[start : start + SAMPLE_CHUNK]))
        x, m = sample_series(
            model, cond.to(device), gen, constraints, encoding.mask_source,
            encoding.drawn_from_blood, plan,
        )  # fmt: skip
        summaries.append(stay_summary(x, m, scale, shift))
        xs.append(x.cpu().numpy())
        ms.append(m.cpu().numpy())
    x, m = np.concatenate(xs), np.concatenate(ms)
    drawn = codes.copy()
    # outcomes come last, given the statics and the stays just drawn: their severity is the
    # score of the drawn series (as in training), not the bin the series was drawn from
    codes[:, encoding.severity_index] = encoding.severity_codes(x, m)
    outcomes = range(encoding.n_static, len(encoding.statics))
    summary = torch.cat(summaries)
    sample_fields(model, encoding, codes, outcomes, gen, summary=summary, rates=outcome_rates)
    names = [v.name for v in encoding.variables]
    rules = constraints.tally.to_dict(encoding.bounds, names, list(encoding.unenforced_rules))
    return RawSample(codes, x, m, drawn, rules)


def to_cohort(
    raw: RawSample, encoding: Encoding, schema: Schema, seed: int, provenance: dict
) -> Cohort:
    """Decode model-space draws into a :class:`Cohort` with fresh IDs and jittered times.

    Values measured together in a grid step share one time, uniform within the step and rounded
    down to the minute, so exports are not all at HH:00 yet bin back onto the same grid step.
    """
    rng = np.random.default_rng(seed)
    n = raw.codes.shape[0]
    width = max(5, len(str(n)))
    ids = np.array([f"S{i + 1:0{width}d}" for i in range(n)], dtype=object)
    statics = pd.DataFrame(
        encoding.decode_statics(raw.codes, rng),
        index=pd.Index(ids, name="patient_id"),
        columns=encoding.decoded_names,
    )
    values = encoding.decode_series(raw.x, raw.m)
    step_minutes = encoding.step_hours * 60.0
    offset = np.floor(rng.random(raw.m.shape[:2]) * step_minutes) / 60.0
    pid, t, v = np.nonzero(raw.m > 0.5)
    obs = pd.DataFrame(
        {
            "patient_id": ids[pid],
            "hours": t * encoding.step_hours + offset[pid, t],
            "variable": np.array(schema.variable_names, dtype=object)[v],
            "value": values[pid, t, v],
        }
    )
    obs = obs.sort_values(["patient_id", "hours", "variable"], kind="stable")
    return Cohort(schema=schema, statics=statics, observations=obs, provenance=provenance)
