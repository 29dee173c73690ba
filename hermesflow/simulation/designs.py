"""Design presets: published trials the simulators can re-enact.

``isis-hermes``
    ISIS-HERMES (Jaillard et al., "Autologous mesenchymal stem cells improve motor recovery in
    subacute ischemic stroke: a randomized clinical trial", Transl Stroke Res 2020;11:910-923,
    doi:10.1007/s12975-020-00787-z; NCT00875654).  Single-centre, open-label, 2-year
    follow-up.  31 patients randomised 2:1 to intravenous autologous MSCs or not (about 20 to
    cells, 11 controls); 16 received cells (feasibility 80 %, 16 of 20); the publication
    compared treated and controls *as treated* (16 vs 15).  Adverse events: 10 and 16 in
    treated patients, 12 and 24 in controls, cumulative at 6 months and 2 years.  Mixed
    models, as treated: motor-NIHSS p = 0.004, Fugl-Meyer motor p = 0.028, task fMRI activity
    in MI-4a p = 0.031 and MI-4p p = 0.002; no effect on Barthel, NIHSS or mRS.

What the preset fixes, and what is this project's reading
---------------------------------------------------------
* Visits at 1, 6 and 24 months.  The abstract names the 6-month and 2-year follow-up; the
  1-month visit as the first (baseline) session is this project's reading of the protocol.
* Randomisation 2:1 in permuted blocks of three (the scheme is not in the abstract; blocks of
  three are the smallest that keep 2:1), so 30 participants give exactly 20 : 10 and the 31st
  is allocated within an eleventh block: 20.67 allocated to cells on average.
* Non-adherence 20 % (feasibility 80 %): 16.5 treated on average, 16 published.
* Adverse events as Poisson counts per participant over the whole follow-up, at the
  published rates: 16 events / 16 treated = 1.0 per treated patient and 24 / 15 = 1.6 per
  control, of which (10 + 12) / (16 + 24) = 55 % fall before 6 months (one share for both
  groups; the published shares are 63 % and 50 %).
* Each outcome is drawn at the ROI-table level (:func:`simulate_roi_trial`) in units of its
  residual SD: random intercept SD 1 (intraclass correlation 0.5), residual SD 1, no random
  slope, control-arm change to 2 years of 1 SD, recovery log-shaped in months (as the
  image-level simulator draws it: ``s = log(t / 1) / log(24 / 1)``, 0.56 of the 2-year
  change by 6 months).  The effect is carried by the treated patients only.
* Analysed as the pipeline does: categorical time (the 1-month session the reference), random
  intercept per participant, REML, Satterthwaite F for the joint arm x time test (2 df), which
  is the primary family's test (:mod:`hermesflow.group.multiplicity`); ITT beside as treated.

Effect sizes: how they were chosen
----------------------------------
The effect is the treated-minus-control change from 1 month to 2 years, in residual SDs.  It
was chosen so that the *median* as-treated joint p over simulated trials is near the
published p: a search over a grid of effects with every primary outcome at the same effect
(as treated, Wald only, one run per point)::

    for e in 1.25 1.5 1.75 2 2.25; do
        hermesflow power OUT_$e --design isis-hermes --effects $e --n-trials 100 \\
            --n-permutations 0 --analysis-sets as_treated --terms "arm:time (joint)"
    done

then log(median p) interpolated linearly in the effect at each published p and rounded to
0.05 (:func:`effect_for_p`).  The four outcomes are drawn alike at a grid point, so their
medians were pooled (geometric mean of the four medians; 100 trials each, seed 20261125):

====== =========================== ==============================
effect median as-treated joint p    per outcome (NIHSS-m, FM, 4a, 4p)
====== =========================== ==============================
1.25   0.040                        0.049, 0.034, 0.041, 0.039
1.50   0.013                        0.018, 0.011, 0.013, 0.012
1.75   0.0036                       0.0055, 0.0028, 0.0035, 0.0032
2.00   0.00089                      0.0014, 0.00064, 0.00093, 0.00078
2.25   0.00019                      0.00029, 0.00014, 0.00019, 0.00017
====== =========================== ==============================

giving motor-NIHSS 1.73 -> -1.75 (a decrease is an improvement), Fugl-Meyer motor 1.33 -> 1.35,
MI-4a 1.31 -> 1.30 and MI-4p 1.86 -> 1.85 residual SDs.  The search is coarse: the four outcomes, drawn
alike, have medians up to a factor 2 apart at one point (0.0028-0.0055 at 1.75), about 0.1
residual SD in effect.  ``hermesflow power OUT --design isis-hermes`` at these effects
reports the median p next to the published one (see the README's Power bullet).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hermesflow.errors import ConfigError
from hermesflow.simulation.power import Scenario


@dataclasses.dataclass(frozen=True)
class TrialDesign:
    """A published trial's design, outcomes and the effects that make its results typical.

    Attributes
    ----------
    name, reference : str
        Preset name and citation.
    n_participants : int
        Number randomised.
    allocation : (int, int)
        Cells : control ratio.
    block_size : int
        Permuted-block size (a multiple of the allocation's sum).
    months : tuple of float
        Visits, months since stroke; the first is the reference session.
    treated_fraction : float
        Share of patients randomised to cells who received them.
    effects : mapping outcome -> float
        Treatment effect on the 1-month to last-visit change, in residual SDs (signed: lower
        NIHSS is better).
    published_p : mapping outcome -> float
        The published as-treated p-values of those outcomes.
    ae_rate_treated, ae_rate_control : float
        Adverse events per participant over the whole follow-up, treated and not treated.
    ae_early_fraction : float
        Share of the adverse events that fall before 6 months.
    """

    name: str
    reference: str
    n_participants: int
    allocation: tuple[int, int]
    block_size: int
    months: tuple[float, ...]
    treated_fraction: float
    effects: Mapping[str, float]
    published_p: Mapping[str, float]
    ae_rate_treated: float
    ae_rate_control: float
    ae_early_fraction: float
    time_effect: float = 1.0
    sd_intercept: float = 1.0
    sd_noise: float = 1.0
    profile: str = "log"
    time_coding: str = "categorical"

    def scenario(self, effects: Mapping[str, float] | None = None) -> Scenario:
        """The ROI-table scenario of the preset (``effects`` replaces the preset's)."""
        chosen = dict(self.effects if effects is None else effects)
        return Scenario(
            n_participants=self.n_participants, allocation=self.allocation,
            months=tuple(self.months), time_effect=self.time_effect,
            sd_intercept=self.sd_intercept, sd_slope=0.0, sd_noise=self.sd_noise,
            missing=0.0, non_adherence=1.0 - self.treated_fraction,
            block_size=self.block_size, profile=self.profile,
            effects=tuple(chosen.items()),
        )

    def scaled(self, effect: float) -> dict[str, float]:
        """Every outcome at ``|effect|``, each keeping the sign of its preset effect."""
        return {k: float(np.copysign(abs(effect), v)) for k, v in self.effects.items()}

    def simulation_spec(self, **overrides: Any) -> Any:
        """The image-level :class:`~hermesflow.simulation.trial.SimulationSpec` of the preset.

        Participants, visits, adherence and adverse-event rates are the preset's.  The
        image-level truth is in percent signal change: the subject and session SDs are set
        equal (ICC 0.5, as at the ROI-table level) and ``effect_size`` is the mean of the
        MI-4a and MI-4p effects times the session SD, so the truth's effect in residual SDs
        is the preset's.  The measured ROI values carry the GLM's estimation noise on top, so
        image-level trials are somewhat less powerful than the ROI-table ones; the clinical
        scores follow the simulator's own scaling of ``effect_size``.
        """
        from hermesflow.simulation.trial import SimulationSpec

        session_sd = 0.15
        mi = [abs(v) for k, v in self.effects.items() if k.startswith("mi4")]
        values = dict(
            participants=self.n_participants,
            sessions=tuple(int(m) for m in self.months),
            treated_fraction=self.treated_fraction,
            subject_sd=session_sd, session_sd=session_sd,
            effect_size=round(float(np.mean(mi)) * session_sd, 4),
            ae_rate_treated=self.ae_rate_treated, ae_rate_control=self.ae_rate_control,
            ae_early_fraction=self.ae_early_fraction,
        )
        values.update(overrides)
        return SimulationSpec(**values)


ISIS_HERMES = TrialDesign(
    name="isis-hermes",
    reference="Jaillard et al., Transl Stroke Res 2020;11:910-923 (NCT00875654)",
    n_participants=31,
    allocation=(2, 1),
    block_size=3,
    months=(1.0, 6.0, 24.0),
    treated_fraction=0.8,
    effects={"nihss_motor": -1.75, "fm_motor": 1.35, "mi4a_ipsi_psc": 1.30,
             "mi4p_ipsi_psc": 1.85},
    published_p={"nihss_motor": 0.004, "fm_motor": 0.028, "mi4a_ipsi_psc": 0.031,
                 "mi4p_ipsi_psc": 0.002},
    ae_rate_treated=16 / 16,
    ae_rate_control=24 / 15,
    ae_early_fraction=(10 + 12) / (16 + 24),
)

DESIGNS: dict[str, TrialDesign] = {ISIS_HERMES.name: ISIS_HERMES}


def get_design(name: str) -> TrialDesign:
    """The preset called ``name``; a :class:`ConfigError` naming the known ones otherwise."""
    try:
        return DESIGNS[name]
    except KeyError:
        raise ConfigError(f"design {name!r} unknown; use one of {', '.join(DESIGNS)}") from None


def effect_for_p(effects: Sequence[float], median_p: Sequence[float], target: float) -> float:
    """The effect at which the median p reaches ``target``, by interpolation in log p.

    ``median_p`` must fall with the effect (it does, up to simulation error, over a grid of
    positive effects); a target outside the grid is an error rather than an extrapolation.
    """
    x = np.asarray(effects, float)
    logp = np.log(np.asarray(median_p, float))
    order = np.argsort(x)
    x, logp = x[order], logp[order]
    if not (logp.min() <= np.log(target) <= logp.max()):
        raise ValueError(f"p = {target:g} is outside the grid's median p-values "
                         f"[{np.exp(logp.min()):.3g}, {np.exp(logp.max()):.3g}]; widen the grid")
    # np.interp needs increasing x: interpolate effect as a function of -log p
    return float(np.interp(-np.log(target), -logp, x))


__all__ = ["DESIGNS", "ISIS_HERMES", "TrialDesign", "effect_for_p", "get_design"]
