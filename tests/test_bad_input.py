"""Bad input is refused before any training step: a ValueError naming the argument and the value, with the
weights, the optimizer (state and hyper-parameters), the recorder and the files untouched."""
import copy, os
import pytest
import numpy as np
import torch
from conftest import synth
from onecycle_ext import OneCycleScheduler, PartialOneCycleScheduler, ParamScheduler, SchedLin

@pytest.fixture
def trained(tmp_path):
    "A learner after one fit, so its optimizer has state and its recorder a history"
    learn = synth(2, path=tmp_path)
    learn.fit_one_cycle(1, 1e-2)
    return learn

def snapshot(learn):
    return dict(weights=copy.deepcopy(learn.model.state_dict()), opt=copy.deepcopy(learn.opt.state_dict()),
                hypers=copy.deepcopy([dict(h) for h in learn.opt.hypers]), hps=copy.deepcopy(learn.recorder.hps),
                values=copy.deepcopy(learn.recorder.values), lr=learn.lr,
                files=sorted(p for p in learn.path.rglob('*')))

def assert_same(a, b):
    for k in a['weights']: assert torch.equal(a['weights'][k], b['weights'][k])
    assert a['opt']['hypers'] == b['opt']['hypers']
    sa,sb = a['opt']['state'],b['opt']['state']
    assert len(sa) == len(sb)
    for x,y in zip(sa, sb):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    for k in ('hypers', 'hps', 'values', 'lr', 'files'): assert a[k] == b[k], k

BAD = [
    ('fit_one_cycle', (2,), dict(pct_start=1.2), 'pct_start=1.2'),
    ('fit_one_cycle', (2,), dict(pct_start=-0.1), 'pct_start=-0.1'),
    ('fit_one_cycle', (2,), dict(pct_start=0.6, three_phase=True), 'pct_start=0.6'),
    ('fit_one_cycle', (2,), dict(div=0.), 'div=0.0'),
    ('fit_one_cycle', (2,), dict(div=-5), 'div=-5'),
    ('fit_one_cycle', (2,), dict(div_final=0), 'div_final=0'),
    ('fit_one_cycle', (2,), dict(lr_max=-1e-3), 'lr_max=-0.001'),
    ('fit_one_cycle', (2,), dict(lr_max=0.), 'lr_max=0.0'),
    ('fit_one_cycle', (2,), dict(lr_max=float('nan')), 'lr_max=nan'),
    ('fit_one_cycle', (2,), dict(lr_max=[1e-3, 1e-2, 1e-1]), 'has 3 values but the optimizer has 2'),
    ('fit_one_cycle', (2,), dict(lr_max=slice(-1., 1e-2)), 'lr_max.start=-1.0'),
    ('fit_one_cycle', (2,), dict(moms=(0.9, 0.8, 0.7, 0.6)), 'moms=(0.9, 0.8, 0.7, 0.6)'),
    ('fit_one_cycle', (2,), dict(moms=(0.9, 1.5)), 'moms=1.5'),
    ('fit_one_cycle', (2,), dict(anneal='cosine'), "anneal='cosine'"),
    ('fit_one_cycle', (1.5,), dict(), 'n_epoch=1.5'),
    ('fit_one_cycle', ('3',), dict(), "n_epoch='3'"),
    ('fit_one_cycle', (-1,), dict(), 'n_epoch=-1'),
    ('fit_one_cycle', (2,), dict(lr_max=torch.tensor(float('nan'))), 'lr_max=nan'),
    ('fit_one_cycle', (2,), dict(lr_max=torch.tensor([1e-3, 1e-2, 1e-1])), 'has 3 values but the optimizer has 2'),
    ('fit_one_cycle', (2,), dict(moms=(0.9, np.float32(1.5))), 'moms=1.5'),
    ('fit_one_cycle', (3,), dict(start_epoch=-1), 'start_epoch=-1'),
    ('fit_flat_cos', (2,), dict(pct_start=2.), 'pct_start=2.0'),
    ('fit_flat_cos', (2,), dict(lr=float('inf')), 'lr=inf'),
    ('fit_flat_cos', (2,), dict(div_final=-1.), 'div_final=-1.0'),
    ('fit_sgdr', (0, 1), dict(), 'n_cycles=0'),
    ('fit_sgdr', (2, 1), dict(cycle_mult=0), 'cycle_mult=0'),
    ('fit_sgdr', (2, 1), dict(lr_max=-1.), 'lr_max=-1.0'),
    ('fit_sgdr', (2, 1), dict(cycle_decay=0.), 'cycle_decay=0.0'),
    ('fine_tune', (-1,), dict(), 'epochs=-1'),
    ('fine_tune', (1,), dict(base_lr=-1.), 'base_lr=-1.0'),
    ('fine_tune', (1,), dict(moms=(0.9,)), 'moms=(0.9,)'),
    ('fine_tune', (1,), dict(div=0.), 'div=0.0'),
    ('fine_tune', (2,), dict(start_epoch=-1), 'start_epoch=-1'),
    ('fit', (2,), dict(start_epoch=True), 'start_epoch=True'),
    ('fit', (2,), dict(lr=0.), 'lr=0.0'),
    ('fit', (2,), dict(cbs=PartialOneCycleScheduler(1e-2, tot_epochs=5, start_epoch=4)), 'tot_epochs=5'),
    ('fit', (2,), dict(cbs=ParamScheduler({'lr': [SchedLin(1e-3, 1e-2)]*3})), 'has 3 schedules but the optimizer has 2'),
]

@pytest.mark.parametrize('method,args,kwargs,msg', BAD)
def test_refused_before_training(trained, method, args, kwargs, msg):
    trained.unfreeze()  # fine_tune freezes: a refused call must leave every parameter trainable
    trainable = [p.requires_grad for p in trained.model.parameters()]
    before = snapshot(trained)
    with pytest.raises(ValueError, match=msg.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[').replace('.', r'\.')):
        getattr(trained, method)(*args, **kwargs)
    assert_same(before, snapshot(trained))
    assert [p.requires_grad for p in trained.model.parameters()] == trainable
    assert trained.cbs.filter(lambda cb: isinstance(cb, ParamScheduler)) == []

def test_bad_learner_lr(trained):
    trained.lr = -3.
    before = snapshot(trained)
    with pytest.raises(ValueError, match='lr=-3.0'): trained.fit_one_cycle(1)
    assert_same(before, snapshot(trained))

@pytest.mark.parametrize('make,msg', [
    (lambda: PartialOneCycleScheduler(1e-2, tot_epochs=4, start_epoch=4), 'tot_epochs=4'),
    (lambda: PartialOneCycleScheduler(1e-2, start_epoch=-2), 'start_epoch=-2'),
    (lambda: OneCycleScheduler.from_torch(1e-2, pct_start=-0.5), 'pct_start=-0.5'),
    (lambda: OneCycleScheduler.from_torch(1e-2, final_div_factor=0), 'final_div_factor=0'),
    (lambda: ParamScheduler([SchedLin(0, 1)]), 'scheds=')])
def test_refused_when_made(make, msg):
    with pytest.raises((ValueError, TypeError), match=msg): make()
