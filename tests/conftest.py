"""Shared set-up: fastai's own methods are captured *before* `onecycle_ext` patches them, so tests can run
the installed fastai and this package side by side on the same learner."""
import os
os.environ.setdefault('MPLBACKEND', 'Agg')
import contextlib, warnings
warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
import pytest
import fastai.callback.schedule as fastai_schedule
from fastai.learner import Learner

_NAMES = ['fit', '_do_fit', 'all_batches', 'fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'fine_tune', 'lr_find']
FASTAI = {n: getattr(Learner, n) for n in _NAMES}

import onecycle_ext  # noqa: E402  (applies the patches)
OURS = {n: getattr(Learner, n) for n in _NAMES}

@contextlib.contextmanager
def fastai_methods(float64=False):
    "Run the installed fastai's fit methods; with `float64`, its `combine_scheds` phases in float64 instead of float32"
    import torch
    saved_tensor = fastai_schedule.tensor
    for n,f in FASTAI.items(): setattr(Learner, n, f)
    if float64: fastai_schedule.tensor = lambda x: torch.tensor(x, dtype=torch.float64)
    try: yield
    finally:
        for n,f in OURS.items(): setattr(Learner, n, f)
        fastai_schedule.tensor = saved_tensor

def synth(n_groups=1, opt_func=None, **kwargs):
    "fastai's `synth_learner` (10 batches of 16, SGD with momentum), quiet, optionally in 2 parameter groups"
    from fastai.test_utils import synth_learner
    learn = synth_learner(**kwargs)
    if opt_func is not None: learn.opt_func = opt_func
    if n_groups == 2: learn.splitter = lambda m: [[m.a], [m.b]]
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn
