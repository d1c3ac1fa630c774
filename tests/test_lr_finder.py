"""`lr_find`: no trace in every failure mode, same suggestions as fastai on clean curves, edge cases fixed."""
import math, random, warnings
import numpy as np
import pytest
import torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from functools import partial
from sklearn.datasets import make_circles
from fastai.optimizer import Adam, SGD, OptimWrapper
from fastai.metrics import accuracy
from fastai.callback.core import Callback
from fastai.callback.training import GradientAccumulation
from fastai.torch_core import set_seed
import fastai.callback.schedule as fs
from conftest import FASTAI, fastai_methods, synth
from onecycle_ext import (LRFinder, Checkpoint, valley, slide, minimum, steep, descent, suggestion_points, trial_rates, trial_losses,
                          start_loss, trial_search)
from onecycle_ext.lr_finder import Snapshot

def mlp_learner(path, seed=0, n_groups=1):
    "A small MLP with dropout on shuffled random data: random streams matter to its training"
    set_seed(seed)
    x = torch.randn(320, 8); y = (x[:, :2].sum(1) > 0).long()
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds[:256], bs=32, shuffle=True), DataLoader(ds[256:], bs=64))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=Adam, path=path, lr=3e-3)
    if n_groups == 2: learn.splitter = lambda m: [list(m[0].parameters()), list(m[3].parameters())]
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def state(learn):
    "Everything lr_find must leave as it was"
    rec = learn.recorder
    opt = None if learn.opt is None else learn.opt.state_dict()
    return dict(
        weights={k: v.clone() for k,v in learn.model.state_dict().items()},
        modes=[m.training for m in learn.model.modules()],
        grads=[None if p.grad is None else p.grad.clone() for p in learn.model.parameters()],
        opt=None if opt is None else ([{k: v.clone() if torch.is_tensor(v) else v for k,v in s.items()} for s in opt['state']],
                                      [dict(h) for h in opt['hypers']]),
        opt_obj=learn.opt, lr=learn.lr,
        rec={k: list(getattr(rec, k, [])) for k in ('lrs', 'losses', 'iters', 'values')},
        hps=dict(getattr(rec, 'hps', {})),
        rngs=(random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone()),
        dl_rngs=[dl.rng.getstate() for dl in learn.dls.loaders],
        files=sorted(learn.path.rglob('*')))

def assert_same_state(a, b):
    assert a['weights'].keys() == b['weights'].keys()
    for k in a['weights']: assert torch.equal(a['weights'][k], b['weights'][k]), k
    assert a['modes'] == b['modes'] and a['opt_obj'] is b['opt_obj'] and a['lr'] == b['lr']
    assert [g is None for g in a['grads']] == [g is None for g in b['grads']]
    assert all(g is None or torch.equal(g, h) for g,h in zip(a['grads'], b['grads']))
    if a['opt'] is not None:
        for s,t in zip(a['opt'][0], b['opt'][0]):
            assert s.keys() == t.keys() and all(torch.equal(s[k], t[k]) if torch.is_tensor(s[k]) else s[k] == t[k] for k in s)
        assert a['opt'][1] == b['opt'][1]
    assert str(a['rec']) == str(b['rec']) and a['hps'] == b['hps']
    assert a['rngs'][0] == b['rngs'][0] and np.array_equal(a['rngs'][1], b['rngs'][1]) and torch.equal(a['rngs'][2], b['rngs'][2])
    assert a['dl_rngs'] == b['dl_rngs'] and a['files'] == b['files'] == []

class Raise(Callback):
    "Raises `exc` after `at` training batches"
    def __init__(self, exc, at=10): self.exc,self.at = exc,at
    def after_batch(self):
        if self.training and self.learn.train_iter >= self.at: raise self.exc

class NaNLoss(Callback):
    "Makes the loss NaN once the learning rate passes `lr`"
    order = 55
    def __init__(self, lr=1e-2): self.lr = lr
    def after_loss(self):
        if self.learn.opt.hypers[-1]['lr'] > self.lr: self.learn.loss_grad = self.learn.loss_grad * float('nan')

@pytest.fixture(params=['fresh', 'trained'])
def learn(request, tmp_path):
    learn = mlp_learner(tmp_path)
    if request.param == 'trained': learn.fit_one_cycle(1, 1e-2)  # optimizer state, recorder history, model in eval mode
    return learn

@pytest.mark.parametrize('mode', ['finished', 'diverged', 'nan', 'exception', 'interrupt'])
def test_no_trace(learn, mode):
    before = state(learn)
    kwargs = dict(show_plot=False, suggest_funcs=(valley, minimum, steep, slide))
    if mode == 'finished': learn.lr_find(end_lr=1e-2, **kwargs)
    elif mode == 'diverged': learn.lr_find(end_lr=1e4, **kwargs)
    elif mode == 'nan':
        learn.add_cb(NaNLoss())
        try: res = learn.lr_find(**kwargs)
        finally: learn.remove_cb(learn.cbs.filter(lambda c: isinstance(c, NaNLoss))[0])
        assert all(math.isfinite(v) and v <= 1e-2 for v in res)
        before['files'] = []  # the callback itself is removed again above
    else:
        exc = RuntimeError('boom') if mode == 'exception' else KeyboardInterrupt()
        learn.add_cb(Raise(exc))
        try:
            with pytest.raises(type(exc)): learn.lr_find(**kwargs)
        finally: learn.remove_cb(learn.cbs.filter(lambda c: isinstance(c, Raise))[0])
    assert_same_state(before, state(learn))

@pytest.mark.parametrize('extra', [None, 'frozen', 'grad_accum', 'fp16'])
def test_lr_find_then_fit_equals_fit_alone(tmp_path, extra):
    "With fp16, fastai's MixedPrecision runs its callbacks; on a machine without CUDA torch disables autocast and the scaler"
    def run(with_lr_find):
        learn = mlp_learner(tmp_path, seed=1, n_groups=2)
        cbs = [GradientAccumulation(64)] if extra == 'grad_accum' else []
        if extra == 'frozen': learn.create_opt(); learn.freeze()
        if extra == 'fp16': learn.to_fp16()
        if with_lr_find: learn.lr_find(show_plot=False)
        learn.fit_one_cycle(2, 1e-2, cbs=cbs)
        return [p.detach().clone() for p in learn.model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch: CUDA is not available, autocast disabled
        for a,b in zip(run(True), run(False)): assert torch.equal(a, b)

def test_per_group_lists(tmp_path):
    learn = mlp_learner(tmp_path, n_groups=2)
    cb = LRFinder(start_lr=[1e-7, 1e-6], end_lr=[1., 10.], num_it=50)
    learn.fit(2, cbs=cb)
    g = np.array(learn.recorder.group_hps['lr'])
    np.testing.assert_allclose(g[:, 0], [1e-7 * (1e7) ** (i/50) for i in range(len(g))], rtol=1e-12)
    np.testing.assert_allclose(g[:, 1], [1e-6 * (1e7) ** (i/50) for i in range(len(g))], rtol=1e-12)
    res = learn.lr_find(start_lr=[1e-7, 1e-6], end_lr=[1., 10.], show_plot=False)
    assert 1e-6 < res.consensus < 10.

def test_exactly_num_it_points_across_epochs(tmp_path):
    learn = mlp_learner(tmp_path)  # 8 batches an epoch
    learn.fit(10, cbs=LRFinder(end_lr=1e-3, num_it=21))
    assert len(learn.recorder.lrs) == len(learn.recorder.losses) == 21

def test_too_few_points_says_what_to_change(learn):
    before = state(learn)
    with pytest.raises(ValueError, match='raise num_it'): learn.lr_find(start_lr=10., end_lr=1e6, num_it=20, show_plot=False)
    assert_same_state(before, state(learn))

@pytest.mark.parametrize('kw,msg', [(dict(num_it=0), 'num_it=0'), (dict(start_lr=-1.), 'start_lr=-1.0'),
                                    (dict(end_lr=float('nan')), 'end_lr=nan'), (dict(suggest_funcs=(1,)), 'suggest_funcs')])
def test_bad_arguments(learn, kw, msg):
    before = state(learn)
    with pytest.raises(ValueError, match=msg): learn.lr_find(show_plot=False, **kw)
    assert_same_state(before, state(learn))

CURVES = {
    'dip': lambda x: 2. - np.tanh(3*x) + np.clip(x - 0.6, 0, None)**2 * 30,
    'late_dip': lambda x: 2.3 - 0.8/(1 + np.exp(-12*(x - 0.7))) + np.clip(x - 0.85, 0, None) * 20,
    'noisy': lambda x: 2. - np.tanh(3*x) + x**6 * 3 + 0.01*np.sin(40*x),
}

@pytest.mark.parametrize('name', list(CURVES))
@pytest.mark.parametrize('ours,theirs', [(valley, fs.valley), (slide, fs.slide), (minimum, fs.minimum), (steep, fs.steep)])
def test_same_suggestions_as_fastai_on_clean_curves(name, ours, theirs):
    lrs = np.geomspace(1e-7, 10., 100)
    losses = CURVES[name](np.linspace(-1, 1, 100))
    # as fastai's lr_find hands them over: float32 tensors of the curve without its first tenth and last 5 points
    t_lrs,t_losses = torch.tensor(list(lrs[10:-5])),torch.tensor(list(losses[10:-5]))
    expected = theirs(t_lrs, t_losses, 100)[0]
    got = ours(*suggestion_points(lrs, losses, 100), 100)[0]
    assert got == pytest.approx(float(expected), rel=1e-6)

def test_lr_find_same_suggestions_as_fastai(tmp_path):
    funcs = (fs.valley, fs.minimum, fs.steep, fs.slide)
    ours = mlp_learner(tmp_path, seed=3).lr_find(show_plot=False, suggest_funcs=(valley, minimum, steep, slide))
    theirs_learn = mlp_learner(tmp_path, seed=3)
    with fastai_methods(): theirs = theirs_learn.lr_find(show_plot=False, suggest_funcs=funcs)
    for a,b in zip(ours, theirs): assert a == pytest.approx(b, rel=1e-5)

def test_edge_cases_fastai_gets_wrong():
    lrs,losses = torch.tensor([1e-3, 1e-2, 1e-1, 1., 10.]),torch.tensor([2., 1., 3., 4., 5.])
    assert fs.valley(lrs, losses, 100)[0] == pytest.approx(10.)   # fastai: the largest lr
    assert valley(lrs, losses, 100)[0] < 10.
    short_lrs,short_losses = torch.tensor(np.geomspace(1e-4, 1., 10)),torch.tensor(np.linspace(2., 1., 10))
    with pytest.raises(IndexError): fs.slide(short_lrs, short_losses, 100)
    assert 1e-4 <= slide(short_lrs, short_losses, 100)[0] <= 1.

def test_plot_on_log_axis(tmp_path):
    import matplotlib.pyplot as plt
    plt.close('all')
    mlp_learner(tmp_path).lr_find(suggest_funcs=(valley, steep))
    ax = plt.gcf().axes[0]
    assert ax.get_xscale() == 'log' and len(ax.get_legend().get_texts()) == 2

def test_descent_stays_before_the_lowest_loss(tmp_path):
    res = mlp_learner(tmp_path).lr_find(show_plot=False, suggest_funcs=(descent,))
    lrs,losses = suggestion_points(res.lrs, res.losses, 100)
    assert res.descent == descent(lrs, losses, 100)[0] <= lrs[np.argmin(losses)]

def test_descent_ignores_the_diverging_part():
    "steep can pick a drop past the minimum (noise while diverging); descent stays before the lowest loss"
    lrs = np.geomspace(1e-6, 10., 90)
    losses = 2.3 - 0.5/(1 + np.exp(-(np.log10(lrs) + 2)*4)) + np.where(lrs > 0.3, 3., 0.)
    losses[-3:] = [5., 2.5, 6.]  # a sharp drop in the divergence
    assert steep(lrs, losses, 100)[0] > 0.3
    assert 1e-3 < descent(lrs, losses, 100)[0] < 3e-2

def test_numbers_as_torch_takes_them():
    "`start_lr`/`end_lr` as 0-d tensors or numpy scalars, as the fit methods take them: the same range test as floats"
    import numpy as np
    from onecycle_ext import LRFinder
    start = torch.tensor(1e-6)  # float32, as torch makes it
    a,b = LRFinder(start_lr=start, end_lr=np.float64(1.)),LRFinder(start_lr=float(start), end_lr=1.)
    va,vb = a.make_scheds(1, 10)['lr'](0.5),b.make_scheds(1, 10)['lr'](0.5)
    assert type(va) is float and va == vb

def xor_learner(path, seed=0, cbs=(), n_valid=400):
    "Plain SGD on XOR from small tanh weights: 100 batches of a range test train nothing, a few epochs at a rate near 1 do"
    set_seed(seed)
    x = torch.randn(2000, 2); y = ((x[:, 0] * x[:, 1]) > 0).long()
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds[:1600], bs=64, shuffle=True), DataLoader(ds[1600:1600+n_valid], bs=256))
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))
    with torch.no_grad():
        for p in model.parameters(): p.mul_(.5)
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=SGD, path=path, cbs=list(cbs))
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def test_a_flat_range_test_is_followed_by_trials_that_leave_no_trace(tmp_path):
    """The range test is flat: `consensus` is the trial with the lowest validation loss, which trains where the curve's
    own reading does not; the trials, like the test, leave the learner as it was, even with a Checkpoint attached"""
    learn = xor_learner(tmp_path, cbs=[Checkpoint(every_iters=5)])
    before = state(learn)
    with pytest.warns(UserWarning, match=r'best of \d trials of 100 batches'): res = learn.lr_find(show_plot=False)
    assert_same_state(before, state(learn))
    points = suggestion_points(res.lrs, res.losses, 100)
    again = xor_learner(tmp_path)
    snap = Snapshot(again)
    rates,losses = trial_search(lambda r: trial_losses(again, [r], 100, snap)[0], trial_rates(points[0]), start_loss(again, snap, *points))
    assert res.consensus == rates[int(np.argmin(losses))]
    with pytest.warns(UserWarning, match='is a guess'): curve_only = xor_learner(tmp_path).lr_find(show_plot=False, trials=False)
    def fitted(lr):
        l = xor_learner(tmp_path); l.fit_one_cycle(3, lr)
        return float(l.recorder.values[-1][0]), float(l.recorder.values[-1][1])  # training, validation loss
    assert fitted(res.consensus)[1] < fitted(curve_only.consensus)[1] - 0.005

def rings_learner(path, seed=0):
    "A 4-layer ReLU MLP on scikit-learn's noisy circles under torch's RMSprop: every rate above ~1e-2 leaves it at chance"
    x,y = make_circles(3000, noise=.12, factor=.6, random_state=0)
    ds = list(zip(torch.tensor(x, dtype=torch.float32), torch.tensor(y)))
    set_seed(seed)
    dls = DataLoaders(DataLoader(ds[:2000], bs=32, shuffle=True), DataLoader(ds[2000:], bs=500))
    layers = [nn.Linear(2, 32), nn.ReLU()] + [m for _ in range(3) for m in (nn.Linear(32, 32), nn.ReLU())] + [nn.Linear(32, 2)]
    learn = Learner(dls, nn.Sequential(*layers), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, path=path,
                    opt_func=partial(OptimWrapper, opt=torch.optim.RMSprop))
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def test_trials_go_down_until_one_trains(tmp_path):
    """The whole range test sits at chance, and so do the trials in the two decades below where it ended: the trials go on
    down until one trains, and the fit at `consensus` trains where the lowest of those first rates does not"""
    with pytest.warns(UserWarning, match=r'best of [5-8] trials'): res = rings_learner(tmp_path).lr_find(show_plot=False)
    first = trial_rates(suggestion_points(res.lrs, res.losses, 100)[0])[:4]
    assert res.consensus < first[-1]
    def accuracy_at(lr):
        learn = rings_learner(tmp_path); learn.fit_one_cycle(3, lr)
        return float(learn.validate()[1])
    assert accuracy_at(res.consensus) > .9 > accuracy_at(first[-1]) + .2

def test_trials_without_validation_data_read_the_training_loss(tmp_path):
    "No validation set: each trial is judged on its last smoothed training loss, and says so"
    learn = xor_learner(tmp_path, n_valid=0)
    with pytest.warns(UserWarning, match=r'best of \d trials .*\(training loss'): res = learn.lr_find(show_plot=False)
    assert res.consensus in trial_rates(suggestion_points(res.lrs, res.losses, 100)[0])
