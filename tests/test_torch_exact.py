"""Differential tests: `OneCycleScheduler.from_torch` against the installed `torch.optim.lr_scheduler.OneCycleLR`.

Batch i of the N batches of a run must see, in every parameter group, the lr and momentum that
`OneCycleLR(total_steps=N)` gives at step i (relative 1e-6). Where torch divides by zero we must give
finite values instead."""
import math, warnings
import numpy as np
import pytest
import torch
from conftest import synth
from onecycle_ext import OneCycleScheduler, PartialOneCycleScheduler

def torch_values(n_steps, max_lr, n_groups=1, opt='sgd', **kwargs):
    "Per step, per group: (lrs, moms) of OneCycleLR, or None where torch raises ZeroDivisionError"
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(n_groups)]
    groups = [{'params': [p]} for p in params]
    o = torch.optim.SGD(groups, lr=0.1, momentum=0.9) if opt == 'sgd' else torch.optim.Adam(groups, lr=0.1)
    mom = (lambda g: g['momentum']) if opt == 'sgd' else (lambda g: g['betas'][0])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: s = torch.optim.lr_scheduler.OneCycleLR(o, max_lr, total_steps=n_steps, **kwargs)
        except ZeroDivisionError: return None
        lrs,moms = [],[]
        for i in range(n_steps):
            lrs.append([g['lr'] for g in o.param_groups]); moms.append([mom(g) for g in o.param_groups])
            o.step()
            if i < n_steps-1:
                try: s.step()
                except ZeroDivisionError: return None
    return np.array(lrs),np.array(moms)

SWEEP = [(n, pct, anneal, three)
         for n in [1, 2, 3, 4, 5, 7, 10, 13, 30, 100, 1000]
         for pct in [0.0, 0.1, 0.25, 0.3, 0.5, 0.75, 1.0]
         for anneal in ['cos', 'linear'] for three in [False, True]]

@pytest.mark.parametrize('n,pct,anneal,three', SWEEP)
def test_preview_matches_torch(n, pct, anneal, three):
    kw = dict(pct_start=pct, anneal_strategy=anneal, three_phase=three, div_factor=20., final_div_factor=50.)
    ours = OneCycleScheduler.from_torch(0.1, **kw).preview(n, 1)
    assert all(math.isfinite(v) for v in ours['lr'] + ours['mom'])
    theirs = torch_values(n, 0.1, **kw)
    if theirs is None: return  # torch divides by zero here; ours is finite (checked above)
    np.testing.assert_allclose(ours['lr'], theirs[0][:, 0], rtol=1e-6, atol=0)
    np.testing.assert_allclose(ours['mom'], theirs[1][:, 0], rtol=1e-6, atol=0)

def test_sweep_covers_torch_zero_divisions():
    "The sweep includes cases where torch raises ZeroDivisionError, which ours turns into finite values"
    failing = [(n, pct, three) for n,pct,_,three in SWEEP if torch_values(n, 0.1, pct_start=pct, three_phase=three) is None]
    assert (10, 0.1, False) in failing and (1, 1.0, False) in failing

@pytest.mark.parametrize('opt', ['sgd', 'adam'])
@pytest.mark.parametrize('kw', [dict(), dict(three_phase=True, anneal_strategy='linear', pct_start=0.4),
                                dict(base_momentum=[0.8, 0.85], max_momentum=[0.9, 0.99], div_factor=10.)])
def test_fit_matches_torch_per_group(opt, kw):
    "A real fit with two parameter groups: every group's lr and momentum, batch by batch"
    from fastai.optimizer import Adam, SGD
    learn = synth(2, opt_func=SGD if opt == 'sgd' else Adam)
    max_lr = [1e-3, 1e-2]
    learn.fit(3, cbs=OneCycleScheduler.from_torch(max_lr, **kw))
    n = 3 * len(learn.dls.train)
    lrs,moms = torch_values(n, max_lr, n_groups=2, opt=opt, **kw)
    np.testing.assert_allclose(learn.recorder.group_hps['lr'], lrs, rtol=1e-6, atol=0)
    np.testing.assert_allclose(learn.recorder.group_hps['mom'], moms, rtol=1e-6, atol=0)

def test_no_momentum_cycling():
    learn = synth()
    learn.fit(1, cbs=OneCycleScheduler.from_torch(1e-2, cycle_momentum=False))
    assert set(learn.recorder.hps) == {'lr'}

def test_partial_torch_chunks_equal_whole():
    whole = OneCycleScheduler.from_torch(1e-2, three_phase=True).preview(9, 7)
    parts = [PartialOneCycleScheduler.from_torch(1e-2, three_phase=True, tot_epochs=9, start_epoch=s).preview(k, 7)
             for s,k in [(0, 2), (2, 5), (7, 2)]]
    assert sum((p['lr'] for p in parts), []) == whole['lr']
    lrs,_ = torch_values(63, 1e-2, three_phase=True)
    np.testing.assert_allclose(whole['lr'], lrs[:, 0], rtol=1e-6, atol=0)

def test_pct_start_checked():
    with pytest.raises(ValueError, match='pct_start=1.5'): OneCycleScheduler.from_torch(1e-2, pct_start=1.5)
    with pytest.raises(ValueError, match='max_lr|lr_max'): OneCycleScheduler.from_torch(-1.)
