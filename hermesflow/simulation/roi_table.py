"""A fast trial simulator at the level of the group long table (no images).

It draws what the group stage sees: per participant x session values of ROI measures or
clinical scores, from ``value = mean(time) + treatment effect(time) + b0_i + b1_i s(t) +
noise``, where ``s(t)`` is the time since the first session as a share of the whole follow-up
(``profile='linear'``) or, as the image-level simulator draws it, ``log(t / t0) /
log(t_last / t0)`` (``profile='log'``; recovery after stroke is fastest early).  The effect
is carried by the participants who were treated: a participant randomised to cells who did not
receive them (``non_adherence``) recovers like a control, so the intention-to-treat contrast
is diluted and the as-treated one is not.  Used by
power and calibration studies and by the tests; the image-level simulator lives in
:mod:`hermesflow.simulation.trial`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hermesflow.errors import ConfigError


def simulate_roi_trial(
    n_participants: int = 31,
    *,
    allocation: tuple[int, int] = (2, 1),
    months: Sequence[float] = (1.0, 6.0, 24.0),
    outcomes: Sequence[str] = ("mi4p_ipsi_effect",),
    effect: float | Mapping[str, float] = 0.0,
    time_effect: float = 1.0,
    sd_intercept: float = 1.0,
    sd_slope: float = 0.0,
    sd_noise: float = 1.0,
    missing: float = 0.0,
    non_adherence: float = 0.0,
    block_size: int | None = None,
    seed: int | np.random.Generator | None = 0,
    profile: str = "linear",
) -> pd.DataFrame:
    """Simulate one trial's long table.

    Parameters
    ----------
    n_participants : int
        Number randomised.
    allocation : (int, int)
        Ratio msc : control.  Without ``block_size`` the msc count is ``round(n * a / (a + b))``
        and the labels are a random permutation (complete randomisation with fixed counts).
    months : sequence of float
        Session times; session ids are ``ses-XX`` with zero-padded months.
    outcomes : sequence of str
        Outcome names; each is drawn independently with the same parameters.
    effect : float or mapping outcome -> float
        Treatment effect on the change from the first to the last session (treated minus
        control); at an intermediate session it is scaled by ``s(t)``.  The arms do not differ
        at the first session.  A mapping gives each outcome its own effect (outcomes it does
        not name get 0).
    time_effect : float
        Mean change from first to last session in the control arm (scaled by ``s(t)``).
    sd_intercept, sd_slope, sd_noise : float
        SDs of the participant intercept, the participant slope on ``s(t)`` (patients
        recovering at different rates) and the residual.
    missing : float
        Probability that a follow-up session is missing (the first session never is).
    non_adherence : float
        Probability that an msc participant was not treated (``treated = 'no'``); such a
        participant gets no treatment effect.
    block_size : int, optional
        Permuted-block randomisation: consecutive participants form blocks of this size
        (a multiple of ``a + b``), each a random permutation of ``a : b`` labels in that
        ratio (the last block may be cut short); the block is recorded in column ``block``.
    seed : int or Generator
        Random seed.
    profile : {'linear', 'log'}
        Shape of ``s(t)`` (see the module docstring); both are 0 at the first session and 1 at
        the last.

    Returns
    -------
    DataFrame
        The long table in the group stage's contract.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    months = np.asarray(months, float)
    s = time_share(months, profile)
    if block_size is None:
        n_msc = int(round(n_participants * allocation[0] / sum(allocation)))
        arm = np.array(["msc"] * n_msc + ["control"] * (n_participants - n_msc))
        arm = rng.permutation(arm)
        block = None
    else:
        arm, block = _permuted_blocks(n_participants, allocation, block_size, rng)
    treated = np.where((arm == "msc") & (rng.random(n_participants) >= non_adherence),
                       "yes", "no")
    # the effect follows what a participant received (identical to the arm without
    # non-adherence, so those trials draw what they always drew)
    is_treated = (treated == "yes").astype(float)
    ids = [f"sub-{i + 1:02d}" for i in range(n_participants)]
    participants = pd.DataFrame({
        "participant_id": ids, "arm": arm, "treated": treated,
        "age": np.round(rng.normal(62, 10, n_participants), 1),
        "sex": rng.choice(["F", "M"], n_participants),
        "lesion_side": rng.choice(["L", "R"], n_participants),
        "lesion_volume_ml": np.round(rng.lognormal(3, 0.6, n_participants), 1),
    })
    if block is not None:
        participants["block"] = block
    present = rng.random((n_participants, len(months))) >= missing
    present[:, 0] = True
    frames = []
    for outcome in outcomes:
        b0 = rng.normal(0, sd_intercept, n_participants)
        b1 = rng.normal(0, sd_slope, n_participants)
        size = effect.get(outcome, 0.0) if isinstance(effect, Mapping) else effect
        mean = time_effect * s[None, :] + size * is_treated[:, None] * s[None, :]
        value = mean + b0[:, None] + b1[:, None] * s[None, :] \
            + rng.normal(0, sd_noise, (n_participants, len(months)))
        i, t = np.nonzero(present)
        frames.append(pd.DataFrame({
            "participant_id": np.asarray(ids)[i],
            "session_id": [f"ses-{m:02.0f}" for m in months[t]],
            "months": months[t], "outcome": outcome, "value": value[i, t],
        }))
    long = pd.concat(frames, ignore_index=True).merge(participants, on="participant_id")
    columns = ["participant_id", "session_id", "months", "arm", "treated", "age", "sex",
               "lesion_side", "lesion_volume_ml", "outcome", "value"]
    if block is not None:
        columns.insert(5, "block")
    return long[columns]


def time_share(months: np.ndarray, profile: str) -> np.ndarray:
    """``s(t)``: 0 at the first session, 1 at the last, linear or log in months."""
    if profile == "linear":
        return (months - months[0]) / (months[-1] - months[0])
    if profile == "log":
        if months[0] <= 0:
            raise ConfigError(f"profile 'log' needs positive session times, got {months[0]:g}")
        return np.log(months / months[0]) / np.log(months[-1] / months[0])
    raise ConfigError(f"time profile {profile!r} unknown; use 'linear' or 'log'")


def _permuted_blocks(n: int, allocation: tuple[int, int], block_size: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Arms by permuted blocks in the ``allocation`` ratio, and the block of each participant."""
    unit = sum(allocation)
    if block_size <= 0 or block_size % unit:
        raise ConfigError(f"block size {block_size} is not a multiple of the allocation "
                         f"{allocation[0]}:{allocation[1]}")
    per_block = ["msc"] * (allocation[0] * block_size // unit) \
        + ["control"] * (allocation[1] * block_size // unit)
    n_blocks = -(-n // block_size)
    arm = np.concatenate([rng.permutation(per_block) for _ in range(n_blocks)])[:n]
    block = np.repeat(np.arange(1, n_blocks + 1), block_size)[:n]
    return arm, block
