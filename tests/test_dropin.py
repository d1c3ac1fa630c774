"""Drop-in: code written for fastai (and torch's `OneCycleLR`) keeps working after `import onecycle_ext`, checked side by
side with the installed fastai and torch: fits with nothing to run, tensors and numpy scalars as numbers, optimizers
without momentum, and subclasses written for fastai's `ParamScheduler`."""
import contextlib, copy, re, warnings
from functools import partial
import numpy as np
import pytest
import torch
from conftest import fastai_methods, synth
from fastai.callback.core import Callback
from fastai.callback.schedule import ParamScheduler as FastaiParamScheduler
from fastai.optimizer import Optimizer, OptimWrapper, sgd_step
from fastai.torch_core import set_seed
from onecycle_ext import OneCycleScheduler, ParamScheduler, SchedCos, SchedLin, group_values

class Events(Callback):
    "The events fired, but those of batches"
    order = -100
    def __init__(self): self.seen = []
    def __call__(self, name):
        if 'batch' not in name and name not in ('after_pred', 'after_loss', 'before_backward', 'after_backward',
                                                'before_step', 'after_step'): self.seen.append(name)
        return super().__call__(name)

def state(learn):
    return dict(weights=[p.detach().clone() for p in learn.model.parameters()],
                opt=None if learn.opt is None else (type(learn.opt), [dict(h) for h in learn.opt.hypers],
                                                    copy.deepcopy([dict(s) for s in learn.opt.state_dict()['state']])),
                hps=copy.deepcopy(getattr(learn.recorder, 'hps', None)), n_epoch=getattr(learn, 'n_epoch', None))

def run(call, fastai, trained):
    set_seed(0)
    learn = synth(lr=1e-2)
    if trained: learn.fit(1)  # an optimizer with state, a recorder with a history
    ev = Events(); learn.add_cb(ev)
    before = state(learn)
    if fastai:
        with fastai_methods(): call(learn)
    else: call(learn)
    return before,state(learn),ev.seen

def skipped_epochs_removed(events):
    "fastai cancels each skipped epoch (before_epoch, after_cancel_epoch, after_epoch); this package never starts them"
    return [e for e in events if e not in ('before_epoch', 'after_cancel_epoch', 'after_epoch')]

NOTHING_TO_RUN = [
    ('fit(0)', lambda l: l.fit(0)),
    ('fit(3, start_epoch=3)', lambda l: l.fit(3, start_epoch=3)),
    ('fit(3, start_epoch=5)', lambda l: l.fit(3, start_epoch=5)),
    ('fit(np.int64(0))', lambda l: l.fit(np.int64(0))),
    ('fit_one_cycle(0)', lambda l: l.fit_one_cycle(0)),
    ('fit_one_cycle(4, start_epoch=4)', lambda l: l.fit_one_cycle(4, 1e-3, start_epoch=4)),
    ('fit_flat_cos(0)', lambda l: l.fit_flat_cos(0)),
]

@pytest.mark.parametrize('trained', [False, True])
@pytest.mark.parametrize('name,call', NOTHING_TO_RUN)
def test_nothing_to_run_as_fastai(name, call, trained):
    "Weights and optimizer state untouched, the optimizer made and given lr/wd, before_fit/after_fit fired, as fastai"
    b_ours,ours,ev_ours = run(call, False, trained)
    b_theirs,theirs,ev_theirs = run(call, True, trained)
    for a,b,w in zip(ours['weights'], theirs['weights'], b_ours['weights']): assert torch.equal(a, w) and torch.equal(b, w)
    assert ours['opt'] is not None and ours['opt'][:2] == theirs['opt'][:2]
    assert all(s.keys() == t.keys() and all(torch.equal(s[k], t[k]) for k in s) for s,t in zip(ours['opt'][2], theirs['opt'][2]))
    assert ours['hps'] == theirs['hps'] and ours['n_epoch'] == theirs['n_epoch']
    assert ev_ours[0] == 'before_fit' and ev_ours[-1] == 'after_fit'
    assert ev_ours == skipped_epochs_removed(ev_theirs)

def test_fine_tune_0_as_fastai():
    "fine_tune(0): the frozen epoch only, then a fit with nothing to run, as fastai"
    _,ours,_ = run(lambda l: l.fine_tune(0), False, False)
    _,theirs,_ = run(lambda l: l.fine_tune(0), True, False)
    for a,b in zip(ours['weights'], theirs['weights']): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ours['hps'] == theirs['hps'] == {'lr': [], 'mom': []}

# --- Numbers: what torch takes as a number, 0-d tensors and numpy scalars, is a number here too

NUMBERS = [torch.tensor(0.1), torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.1, requires_grad=True),
           np.float32(0.1), np.float64(0.1), np.array(0.1)]

@pytest.mark.parametrize('v', NUMBERS, ids=lambda v: f"{type(v).__name__}-{getattr(v, 'dtype', '')}")
def test_group_values_take_numbers(v):
    assert group_values('lr', v, 2) == [float(v)]*2 and all(type(x) is float for x in group_values('lr', v, 2))
    assert group_values('lr', [v, v], 2) == [float(v)]*2
    assert group_values('lr', slice(v/10, v), 2) == pytest.approx([float(v)/10, float(v)])

def torch_onecycle(opt, n_steps, mom_key='momentum', **kwargs):
    "OneCycleLR's lr (and momentum) per step, per group"
    s = torch.optim.lr_scheduler.OneCycleLR(opt, total_steps=n_steps, **kwargs)
    lrs,moms = [],[]
    for i in range(n_steps):
        lrs.append([float(g['lr']) for g in opt.param_groups])
        moms.append([float(g[mom_key]) for g in opt.param_groups if mom_key in g])
        opt.step()
        if i < n_steps - 1: s.step()
    return np.array(lrs),np.array(moms)

def test_from_torch_tensor_arguments_match_torch():
    "Every number as a tensor or numpy scalar, in a real two-group fit, against OneCycleLR given the same arguments"
    kw = dict(max_lr=[torch.tensor(1e-3), torch.tensor(1e-2)], base_momentum=torch.tensor(0.8), max_momentum=np.float32(0.9),
              div_factor=torch.tensor(10.), final_div_factor=np.float64(100.), pct_start=0.3)  # torch takes only a float
    learn = synth(2)
    learn.fit(2, cbs=OneCycleScheduler.from_torch(**kw))
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    lrs,moms = torch_onecycle(torch.optim.SGD([{'params': [p]} for p in params], lr=0.1, momentum=0.9), 2*len(learn.dls.train), **kw)
    np.testing.assert_allclose(learn.recorder.group_hps['lr'], lrs, rtol=1e-6, atol=0)
    np.testing.assert_allclose(learn.recorder.group_hps['mom'], moms, rtol=1e-6, atol=0)
    assert all(type(v) is float for row in learn.recorder.group_hps['lr'] for v in row)  # no tensor math per batch

def test_tensor_lr_max_same_as_float():
    a,b = synth(2),synth(2)
    a.fit_one_cycle(2, lr_max=torch.tensor(1e-2), moms=(torch.tensor(0.95), np.float64(0.85), 0.95))
    b.fit_one_cycle(2, lr_max=torch.tensor(1e-2).item(), moms=(torch.tensor(0.95).item(), 0.85, 0.95))
    assert a.recorder.group_hps == b.recorder.group_hps

def test_tensor_numbers_refused_when_bad():
    with pytest.raises(ValueError, match=r'lr_max=tensor\(\[0.1000, 0.2000, 0.3000\]\) has 3 values but the optimizer has 2'):
        synth(2).fit(1, cbs=OneCycleScheduler.from_torch(torch.tensor([0.1, 0.2, 0.3])))
    with pytest.raises(ValueError, match='div_factor=tensor'): OneCycleScheduler.from_torch(0.1, div_factor=torch.tensor(-1.))
    with pytest.raises(ValueError, match='moms=1.5'): OneCycleScheduler(0.1, moms=(torch.tensor(1.5), 0.8))

# --- Optimizers without momentum

RPROP,ADAGRAD = partial(OptimWrapper, opt=torch.optim.Rprop),partial(OptimWrapper, opt=torch.optim.Adagrad)
def plain_sgd(params, lr): return Optimizer(params, [sgd_step], lr=lr)  # fastai's Optimizer with no 'mom'

@pytest.mark.parametrize('opt_func,name', [(RPROP, 'OptimWrapper(Rprop)'), (ADAGRAD, 'OptimWrapper(Adagrad)'),
                                           (plain_sgd, 'Optimizer(sgd_step)')])
def test_default_momentum_not_cycled_without_momentum(opt_func, name):
    "fit_one_cycle on an optimizer without momentum: the lr schedule of fastai's 1cycle, momentum left alone, a warning"
    learn,ref = synth(2, opt_func=opt_func),synth(2)
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.warns(UserWarning, match=re.escape(name) + ' has no momentum'):
        learn.fit_one_cycle(2, 1e-2)
    ref.fit_one_cycle(2, 1e-2)
    assert set(learn.recorder.hps) == {'lr'} and learn.recorder.hps['lr'] == ref.recorder.hps['lr']
    assert learn.opt.hypers[-1]['lr'] == learn.recorder.hps['lr'][-1]
    assert not all(torch.equal(a, b) for a,b in zip(w0, learn.model.parameters()))

def test_fastai_optimizer_without_mom_same_weights_as_fastai():
    "fastai sets 'mom' on an optimizer that never reads it; leaving it out trains the same weights"
    set_seed(1); ours = synth(opt_func=plain_sgd)
    with warnings.catch_warnings(): warnings.simplefilter('ignore'); ours.fit_one_cycle(2, 1e-2)
    set_seed(1); theirs = synth(opt_func=plain_sgd)
    with fastai_methods(): theirs.fit_one_cycle(2, 1e-2)
    for a,b in zip(ours.model.parameters(), theirs.model.parameters()): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.recorder.hps['lr'], theirs.recorder.hps['lr'], rtol=2e-6)

@pytest.mark.parametrize('fit', [lambda l: l.fit_one_cycle(2, moms=(0.9, 0.8, 0.9)),
                                 lambda l: l.fit(2, cbs=OneCycleScheduler.from_torch(1e-2)),
                                 lambda l: l.fit(2, cbs=ParamScheduler({'mom': SchedLin(0.9, 0.8)}))])
def test_asked_momentum_refused_before_any_batch(fit):
    learn = synth(opt_func=RPROP)
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match=r"OptimWrapper\(Rprop\) has no hyper-parameter 'mom'.*moms=None.*cycle_momentum=False"): fit(learn)
    assert learn.opt is None and all(torch.equal(a, b) for a,b in zip(w0, learn.model.parameters()))

def test_from_torch_momentum_as_torch_on_adagrad():
    "torch refuses cycle_momentum=True on Adagrad and ignores the momenta with cycle_momentum=False; so do we"
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError): torch.optim.lr_scheduler.OneCycleLR(torch.optim.Adagrad([p]), 0.1, total_steps=10)
    with pytest.raises(ValueError, match='cycle_momentum=False'): synth(opt_func=ADAGRAD).fit(1, cbs=OneCycleScheduler.from_torch(0.1))
    kw = dict(max_lr=0.1, cycle_momentum=False, base_momentum=5., max_momentum=-1.)  # not momenta: never read
    learn = synth(opt_func=ADAGRAD)
    learn.fit(2, cbs=OneCycleScheduler.from_torch(**kw))
    lrs,_ = torch_onecycle(torch.optim.Adagrad([p]), 2*len(learn.dls.train), **kw)
    np.testing.assert_allclose(learn.recorder.hps['lr'], lrs[:, 0], rtol=1e-6, atol=0)

# --- Subclasses written for fastai's ParamScheduler

def fastai_style(base):
    "Subclasses as a fastai user writes them, on `base` (fastai's `ParamScheduler` or this package's)"
    class Faster(base):
        "Runs the schedules twice as fast, through `_update_val`, and logs each batch's lr in `after_batch`"
        def before_fit(self): super().before_fit(); self.seen = []
        def before_batch(self): self._update_val(min(1., 2*self.pct_train))
        def after_batch(self):
            super().after_batch()
            self.seen.append(self.opt.hypers[-1]['lr'])
    class WithWd(base):
        "Adds a weight decay that follows the lr, in `_update_val`"
        def _update_val(self, pct):
            super()._update_val(pct)
            self.opt.set_hyper('wd', self.opt.hypers[-1]['lr'] * 10)
    class OwnUpdate(base):
        "Sets the optimizer itself, as fastai's `_update_val` does"
        def _update_val(self, pct):
            for n,f in self.scheds.items(): self.opt.set_hyper(n, f(pct) * 0.5)
    return Faster,WithWd,OwnUpdate

@pytest.mark.parametrize('which', [0, 1, 2])
def test_fastai_style_subclass(which):
    scheds = {'lr': SchedCos(1e-3, 1e-2), 'mom': SchedLin(0.95, 0.85)}
    set_seed(2); ours = synth(2); cb = fastai_style(ParamScheduler)[which](scheds)
    ours.fit(2, cbs=cb)
    set_seed(2); theirs = synth(2); cb_f = fastai_style(FastaiParamScheduler)[which](scheds)
    with fastai_methods(): theirs.fit(2, cbs=cb_f)
    assert set(ours.recorder.hps) == set(theirs.recorder.hps) == {'lr', 'mom'}
    for k in ('lr', 'mom'): np.testing.assert_allclose(ours.recorder.hps[k], [float(v) for v in theirs.recorder.hps[k]], rtol=1e-6)
    assert [h['wd'] for h in ours.opt.hypers] == pytest.approx([h['wd'] for h in theirs.opt.hypers])
    if which == 0: np.testing.assert_allclose(cb.seen, [float(v) for v in cb_f.seen], rtol=1e-6)
    for a,b in zip(ours.model.parameters(), theirs.model.parameters()): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

def test_fastai_param_scheduler_under_our_fit():
    "fastai's own ParamScheduler, unchanged, under this package's fit: the same run as under fastai's"
    scheds = {'lr': SchedLin(1e-3, 1e-2), 'mom': SchedCos(0.9, 0.8)}
    set_seed(3); ours = synth(); ours.fit(2, cbs=FastaiParamScheduler(scheds))
    set_seed(3); theirs = synth()
    with fastai_methods(): theirs.fit(2, cbs=FastaiParamScheduler(scheds))
    assert ours.recorder.hps == theirs.recorder.hps and len(ours.recorder.hps['lr']) == 20
    for a,b in zip(ours.model.parameters(), theirs.model.parameters()): assert torch.equal(a, b)

def test_fit_with_workers_draws_as_fastai(tmp_path):
    """A fit without `Checkpoint`, on a loader whose 2 worker processes add noise to each item: the workers draw as
    fastai seeds them (only a checkpointed fit seeds each batch), so the run is fastai's own, bit for bit"""
    from resume_job import learner
    def run(fastai):
        learn = learner(tmp_path, workers=2)
        with fastai_methods() if fastai else contextlib.nullcontext(): learn.fit(2, 1e-2)
        return learn.model.state_dict()
    ours,theirs = run(False),run(True)
    for k,v in theirs.items(): assert torch.equal(ours[k], v), k

# --- Signatures: every argument of fastai's fit methods, in fastai's order, with fastai's defaults

@pytest.mark.parametrize('name', ['fit', 'fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'fine_tune'])
def test_fastai_signature_kept(name):
    import inspect
    from conftest import FASTAI, OURS
    theirs,ours = inspect.signature(FASTAI[name]).parameters,inspect.signature(OURS[name]).parameters
    # fastai's fine_tune lists fit_one_cycle's arguments (`delegates`) but takes them as **kwargs, as ours does
    theirs = [p for p in theirs.values() if p.kind != p.KEYWORD_ONLY]
    assert [(p.name, p.default) for p in theirs] == [(p.name, p.default) for p in list(ours.values())[:len(theirs)]]
