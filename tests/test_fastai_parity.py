"""Differential tests: our fit methods give the same `recorder.hps` as the installed fastai.

fastai's `combine_scheds` keeps its phase boundaries in a float32 tensor (fastai's `tensor()` turns float64
into float32), so its values carry float32 rounding of the position: an error up to about 1e-7 of the
schedule's range (1e-9 for a learning rate of 1e-2). Each case is compared twice: with fastai as
installed, to 2e-7 of the largest value, and with fastai's phases switched to float64
(`fastai_methods(float64=True)`), to an absolute 1e-12."""
import numpy as np
import pytest
import torch
from conftest import fastai_methods, synth
from fastai.torch_core import set_seed
from onecycle_ext import ParamScheduler, SchedCos, SchedLin

def run(method, args, kwargs, n_groups=1, fastai=False, float64=False, seed=0):
    set_seed(seed)
    learn = synth(n_groups, lr=1e-2)
    if fastai:
        with fastai_methods(float64): getattr(learn, method)(*args, **kwargs)
    else: getattr(learn, method)(*args, **kwargs)
    return learn

def assert_same_hps(ours, theirs, atol=None, scale_tol=None, skip=()):
    assert set(ours) == set(theirs)
    for k in ours:
        a,b = np.array(ours[k], dtype=np.float64),np.array([float(v) for v in theirs[k]])
        assert a.shape == b.shape, k
        keep = np.setdiff1d(np.arange(len(a)), list(skip))
        if scale_tol is not None: atol = scale_tol * np.abs(b).max()
        np.testing.assert_allclose(a[keep], b[keep], atol=atol, rtol=0, err_msg=k)

CASES = [
    ('fit_one_cycle', (2,), {}, 1),
    ('fit_one_cycle', (3, 3e-3), {'pct_start': 0.3, 'div': 10., 'div_final': 1e4}, 1),
    ('fit_one_cycle', (3,), {'lr_max': slice(1e-4, 1e-2), 'moms': (0.9, 0.8, 0.7), 'wd': 0.1}, 2),
    ('fit_one_cycle', (2,), {'lr_max': slice(1e-2)}, 2),
    ('fit_one_cycle', (2,), {'lr_max': [1e-3, 1e-2], 'pct_start': 0.}, 2),
    ('fit_one_cycle', (4,), {'pct_start': 1.}, 1),
    ('fit_flat_cos', (3,), {}, 1),
    ('fit_flat_cos', (2, slice(1e-3, 1e-2)), {'pct_start': 0.5, 'div_final': 100.}, 2),
    ('fit_sgdr', (3, 1), {}, 1),
    ('fit_sgdr', (2, 2), {'lr_max': 3e-3, 'cycle_mult': 3}, 1),
    ('fine_tune', (2,), {}, 2),
    ('fine_tune', (1,), {'base_lr': 1e-3, 'freeze_epochs': 2, 'lr_mult': 10}, 2),
]

def _restarts(method, args, kwargs, n=10):
    "Batches where an SGDR cycle starts: fastai's boundaries may miss them, so they are compared apart"
    if method != 'fit_sgdr': return []
    n_cycles,cycle_len = args
    mult = kwargs.get('cycle_mult', 2)
    starts = np.cumsum([0] + [cycle_len * mult**i for i in range(n_cycles)])[:-1]
    return [s*n for s in starts]

@pytest.mark.parametrize('method,args,kwargs,n_groups', CASES)
def test_same_hps_as_fastai(method, args, kwargs, n_groups):
    ours = run(method, args, kwargs, n_groups)
    skip = _restarts(method, args, kwargs)
    theirs = run(method, args, kwargs, n_groups, fastai=True)
    assert_same_hps(ours.recorder.hps, theirs.recorder.hps, scale_tol=2e-7, skip=skip)
    theirs64 = run(method, args, kwargs, n_groups, fastai=True, float64=True)
    assert_same_hps(ours.recorder.hps, theirs64.recorder.hps, atol=1e-12, skip=skip)
    # Same schedule, same data order: same weights, to float rounding of the tiny lr differences.
    for a,b in zip(ours.model.parameters(), theirs64.model.parameters()): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize('args,kwargs', [((3, 1), {}), ((2, 2), {'cycle_mult': 3, 'lr_max': 3e-3})])
def test_sgdr_restarts_exactly_at_lr_max(args, kwargs):
    learn = run('fit_sgdr', args, kwargs)
    lr_max = kwargs.get('lr_max', 1e-2)
    assert [learn.recorder.hps['lr'][i] for i in _restarts('fit_sgdr', args, kwargs)] == [lr_max]*args[0]

def test_param_scheduler_same_as_fastai():
    from fastai.callback.schedule import ParamScheduler as FastaiParamScheduler
    scheds = {'lr': SchedLin(1e-3, 1e-2), 'mom': SchedCos(0.9, 0.8), 'wd': SchedLin(0., 0.1)}
    ours = synth(2); ours.fit(3, cbs=ParamScheduler(scheds))
    theirs = synth(2)
    with fastai_methods(): theirs.fit(3, cbs=FastaiParamScheduler(scheds))
    assert_same_hps(ours.recorder.hps, theirs.recorder.hps, atol=1e-12)
    assert [g[-1] for g in ours.recorder.group_hps['lr']] == ours.recorder.hps['lr']

def test_start_epoch_runs_only_the_tail():
    "fastai fires events for the skipped epochs; ours runs epochs start_epoch.. with the whole run's tail"
    full = run('fit_one_cycle', (5,), {})
    tail = run('fit_one_cycle', (5,), {'start_epoch': 3})
    assert tail.recorder.hps['lr'] == full.recorder.hps['lr'][30:]
    assert len(tail.recorder.values) == 2
    theirs = run('fit_one_cycle', (5,), {'start_epoch': 3}, fastai=True)
    assert len(theirs.recorder.values) == 5  # fastai leaves a row for each skipped epoch

def test_fit_flat_cos_honours_start_epoch():
    full = run('fit_flat_cos', (4,), {})
    tail = run('fit_flat_cos', (4,), {'start_epoch': 2})
    assert tail.recorder.hps['lr'] == full.recorder.hps['lr'][20:]

def test_sgdr_cycle_mult_1_and_decay():
    learn = run('fit_sgdr', (3, 2), {'cycle_mult': 1, 'cycle_decay': 0.5})
    lrs = learn.recorder.hps['lr']
    assert learn.n_epoch == 6 and len(lrs) == 60
    assert [lrs[i] for i in (0, 20, 40)] == [1e-2, 5e-3, 2.5e-3]
    assert all(lrs[i] > lrs[i+1] for i in range(59) if i+1 not in (20, 40))
