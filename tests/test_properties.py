"""Properties of the schedules, over generated settings (hypothesis)."""
import math, pickle
import numpy as np
from hypothesis import given, settings, strategies as st
from onecycle_ext import (OneCycleScheduler, PartialOneCycleScheduler, SchedCos, SchedLin, SchedExp, SchedPoly,
                          SchedNo, combine_scheds, combined_cos)

modes = st.sampled_from([dict(), dict(three_phase=True), dict(anneal='linear'), dict(three_phase=True, anneal='linear'), 'torch'])
lr_maxes = st.floats(1e-6, 10.)

def make(mode, lr_max, pct, **window):
    if mode == 'torch': return PartialOneCycleScheduler.from_torch(lr_max, pct_start=pct, **window)
    return PartialOneCycleScheduler(lr_max, pct_start=min(pct, 0.5) if mode.get('three_phase') else pct, **mode, **window)

@settings(max_examples=150, deadline=None)
@given(mode=modes, lr_max=lr_maxes, pct=st.floats(0., 1.), tot=st.integers(1, 12), n_iter=st.integers(1, 20), data=st.data())
def test_chunks_equal_the_whole_cycle(mode, lr_max, pct, tot, n_iter, data):
    "Consecutive partial fits give exactly the values of the whole cycle in one fit"
    cuts = sorted(data.draw(st.sets(st.integers(1, tot-1), max_size=4))) if tot > 1 else []
    bounds = [0] + cuts + [tot]
    whole = make(mode, lr_max, pct).preview(tot, n_iter)
    for k in whole:
        parts = sum((make(mode, lr_max, pct, tot_epochs=tot, start_epoch=a).preview(b-a, n_iter)[k]
                     for a,b in zip(bounds, bounds[1:])), [])
        assert len(parts) == len(whole[k]) == tot*n_iter
        np.testing.assert_allclose(parts, whole[k], rtol=0, atol=1e-12)

@settings(max_examples=150, deadline=None)
@given(mode=modes, lr_max=lr_maxes, pct=st.floats(0., 1.), div=st.floats(1., 1e3), div_final=st.floats(1., 1e6),
       n=st.integers(2, 300))
def test_values_within_bounds_and_monotone_phases(mode, lr_max, pct, div, div_final, n):
    if mode == 'torch':
        sched = OneCycleScheduler.from_torch(lr_max, pct_start=pct, div_factor=div, final_div_factor=div_final)
        lo = lr_max/div/div_final
    else:
        if mode.get('three_phase'): pct,div_final = min(pct, 0.5),max(div_final, div)  # the 3rd phase goes below the start
        sched = OneCycleScheduler(lr_max, div=div, div_final=div_final, pct_start=pct, **mode)
        lo = min(lr_max/div, lr_max/div_final)
    p = sched.preview(1, n)
    lrs,moms = np.array(p['lr']),np.array(p['mom'])
    tol = 1e-12 * lr_max
    assert lrs.max() <= lr_max + tol and lrs.min() >= lo - tol
    assert moms.max() <= 0.95 + 1e-12 and moms.min() >= 0.85 - 1e-12
    peak = int(np.argmax(lrs))
    assert np.all(np.diff(lrs[:peak+1]) >= -tol)       # warm-up never goes down
    if mode == 'torch' or not mode.get('three_phase'):
        assert np.all(np.diff(lrs[peak:]) <= tol)      # 2 phases: annealing never goes up

@settings(max_examples=200, deadline=None)
@given(start=st.floats(-1e3, 1e3), end=st.floats(-1e3, 1e3), pos=st.floats(0., 1.),
       f=st.sampled_from([SchedLin, SchedCos, SchedNo]))
def test_annealers_return_floats_between_their_ends(start, end, pos, f):
    v = f(start, end)(pos)
    assert type(v) is float
    assert min(start, end) - 1e-9 <= v <= max(start, end) + 1e-9
    assert pickle.loads(pickle.dumps(f(start, end)))(pos) == v

@settings(max_examples=100, deadline=None)
@given(pcts=st.lists(st.floats(0., 1.), min_size=1, max_size=6).filter(lambda p: sum(p) > 0), pos=st.floats(0., 1.))
def test_combine_scheds_accepts_normalised_percentages(pcts, pos):
    "Any non-negative percentages normalised to sum 1 (so up to float rounding) are accepted, and phases tile [0, 1]"
    pcts = [p/sum(pcts) for p in pcts]
    f = combine_scheds(pcts, [SchedLin(i, i+1) for i in range(len(pcts))])
    assert f.bounds[0] == 0. and f.bounds[-1] == 1. and all(a <= b for a,b in zip(f.bounds, f.bounds[1:]))
    v = f(pos)
    assert 0. <= v <= len(pcts)
