"""The default suggestion and fastai's idioms around it: every suggestion on the result, unpacking, a single function,
`plot_lr_find` right after `lr_find`, and the warning on a curve too short or too noisy to suggest from."""
import math, warnings
from functools import partial
import numpy as np
import pytest
import torch
from torch import nn
import matplotlib.pyplot as plt
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.optimizer import Adam, SGD, OptimWrapper
from fastai.torch_core import set_seed
import fastai.callback.schedule as fs
from conftest import fastai_methods, synth
from onecycle_ext import valley, slide, minimum, steep, descent, consensus, suggestion_points, trial_rates

def mlp_learner(seed=0, n=320, bs=32, noise=False, opt_func=Adam):
    "A small MLP on random data; with `noise`, labels that do not depend on the inputs"
    set_seed(seed)
    x = torch.randn(n, 8)
    y = torch.randint(0, 2, (n,)) if noise else (x[:, :2].sum(1) > 0).long()
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds[:n*4//5], bs=bs, shuffle=True), DataLoader(ds[n*4//5:], bs=64))
    learn = Learner(dls, nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2)), loss_func=nn.CrossEntropyLoss(), opt_func=opt_func)
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def theirs(seed, fitted=False, **kwargs):
    "fastai's own lr_find on the same learner and seed (after the same fit if `fitted`): its result and the curve its recorder keeps"
    learn = mlp_learner(seed)
    if fitted: learn.fit_one_cycle(1, 1e-2)
    with fastai_methods(): res = learn.lr_find(show_plot=False, **kwargs)
    return res,learn.recorder

def test_default_is_consensus():
    res = mlp_learner().lr_find(show_plot=False)
    assert res._fields == ('consensus',)
    assert res.consensus == consensus(*suggestion_points(res.lrs, res.losses, 100), 100)[0]

def test_every_fastai_suggestion_on_the_default_result():
    "`learn.lr_find().valley` and the others give what fastai's lr_find gives with that function"
    ours = mlp_learner(3).lr_find(show_plot=False)
    fa,_ = theirs(3, suggest_funcs=(fs.valley, fs.slide, fs.minimum, fs.steep))
    for name in ('valley', 'slide', 'minimum', 'steep'): assert getattr(ours, name) == pytest.approx(getattr(fa, name), rel=1e-5), name
    assert math.isfinite(ours.descent) and len(ours) == 1 and list(ours._asdict()) == ['consensus']

def test_unpacking_and_a_single_function_as_in_fastai():
    lr_min,lr_steep = mlp_learner(1).lr_find(suggest_funcs=(minimum, steep), show_plot=False)
    (fa_min,fa_steep),_ = theirs(1, suggest_funcs=(fs.minimum, fs.steep))
    assert (lr_min, lr_steep) == (pytest.approx(fa_min, rel=1e-5), pytest.approx(fa_steep, rel=1e-5))
    one,(fa_one,_) = mlp_learner(1).lr_find(suggest_funcs=steep, show_plot=False),theirs(1, suggest_funcs=fs.steep)
    assert one._fields == fa_one._fields == ('steep',) and one.steep == pytest.approx(fa_one.steep, rel=1e-5)
    with pytest.raises(ValueError, match='suggest_funcs=()'): mlp_learner().lr_find(suggest_funcs=(), show_plot=False)

def _drawn(fig): return list(fig.axes[0].lines[0].get_xdata()),list(fig.axes[0].lines[0].get_ydata())

@pytest.mark.parametrize('before', ['fresh', 'fitted'])
def test_plot_lr_find_right_after_lr_find_draws_that_test(before):
    "What fastai's plot_lr_find draws after fastai's lr_find: the finder's lrs and losses without the last 5"
    learn = mlp_learner(2)
    if before == 'fitted': learn.fit_one_cycle(1, 1e-2)  # the recorder holds that fit; the plot must not draw it
    res = learn.lr_find(show_plot=False)
    fig = learn.recorder.plot_lr_find()
    _,rec = theirs(2, fitted=before == 'fitted')
    xs,ys = _drawn(fig)
    np.testing.assert_allclose(xs, rec.lrs[:-5], rtol=1e-12)
    np.testing.assert_allclose(ys, [float(l) for l in rec.losses[:-5]], rtol=1e-5)
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == f"consensus: {res.consensus:.2e}"
    if before == 'fitted': assert len(learn.recorder.values) == 1  # the earlier fit's history is still there
    plt.close('all')

def test_plot_lr_find_with_nothing_to_draw_says_what_to_run():
    with pytest.raises(ValueError, match=r'run learn.lr_find\(\) first'): synth().recorder.plot_lr_find()

def test_show_plot_draws_the_test():
    plt.close('all')
    res = mlp_learner().lr_find()
    assert _drawn(plt.gcf())[0] == list(res.lrs[:-5])
    plt.close('all')

def test_no_warning_on_a_clean_curve():
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        mlp_learner().lr_find(show_plot=False)

def test_warns_on_a_short_curve_and_still_suggests():
    with pytest.warns(UserWarning, match=r'raise num_it \(e.g. num_it=40\)'): res = mlp_learner().lr_find(num_it=20, show_plot=False)
    assert math.isfinite(res.consensus) and res.lrs[0] <= res.consensus <= res.lrs[-1]

def test_warns_when_the_loss_never_falls_clearly():
    "Labels that do not depend on the inputs and a batch of 2: the loss only moves by its noise"
    with pytest.warns(UserWarning, match='larger batch size'): res = mlp_learner(noise=True, bs=2).lr_find(show_plot=False, trials=False)
    assert math.isfinite(res.consensus) and res.consensus > 0

def test_a_curve_within_its_noise_is_read_by_trials():
    "The same noisy test with trials on: no rule reads it, so the trials choose, and say why"
    with pytest.warns(UserWarning, match=r'times its batch-to-batch noise: too little for a rule to read.*best of \d trials'):
        res = mlp_learner(noise=True, bs=2).lr_find(show_plot=False)
    assert res.consensus in trial_rates(suggestion_points(res.lrs, res.losses, 100)[0])

def test_warns_when_the_loss_hardly_falls():
    "Plain SGD on labels that do not depend on the inputs: 100 batches train nothing at any rate, and lr_find says so (trials off)"
    with pytest.warns(UserWarning, match=r'falls by .*% of its value over the whole test.*num_it=400'):
        res = mlp_learner(noise=True, bs=64, n=2000, opt_func=SGD).lr_find(show_plot=False, trials=False)
    assert math.isfinite(res.consensus) and res.lrs[0] <= res.consensus <= res.lrs[-1]

@pytest.mark.parametrize('seed', range(6))
def test_synth_learner_suggestion_trains(seed):
    "The README's tour learner: descent suggested ~1e-6 on 4 of these seeds (validation MSE 9 to 18 after 3 epochs)"
    set_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = synth().lr_find(show_plot=False, suggest_funcs=(consensus, valley))
    assert 1e-3 < res.consensus < 1.
    set_seed(seed)
    learn = synth()
    learn.fit_one_cycle(3, res.consensus)
    assert float(learn.recorder.values[-1][1]) < 2.

@pytest.mark.parametrize('opt_func', [Adam, partial(OptimWrapper, opt=torch.optim.AdamW)], ids=['Adam', 'OptimWrapper'])
def test_a_frozen_learner_gets_the_rate_read_and_stays_frozen(opt_func):
    """No factor for `fine_tune` on a frozen learner (10 times the rate read fine-tuned a resnet18 to 33% against 96%:
    bench/suggest_frozen.py), and `lr_find` leaves the learner as frozen as it found it"""
    learn = mlp_learner(opt_func=opt_func)
    learn.splitter = lambda m: [list(m[0].parameters()), list(m[2].parameters())]
    learn.freeze()
    res = learn.lr_find(show_plot=False, trials=False)
    assert res.consensus == consensus(*suggestion_points(res.lrs, res.losses, 100), 100)[0]
    assert learn.opt.frozen_idx == 1 and [p.requires_grad for p in learn.model.parameters()] == [False, False, True, True]
