"""fastai's own methods, captured before `onecycle_ext` replaces them: import this module before anything that
imports `onecycle_ext`, then run fastai's versions inside `with fastai_methods():`."""
import contextlib
import fastai.callback.schedule  # noqa: F401  (fastai's patches)
from fastai.learner import Learner, Recorder

_OWNERS = {'fit': Learner, '_do_fit': Learner, 'all_batches': Learner, 'lr_find': Learner, 'fit_one_cycle': Learner,
           'plot_lr_find': Recorder}
FASTAI = {n: getattr(c, n) for n,c in _OWNERS.items()}

@contextlib.contextmanager
def fastai_methods():
    ours = {n: getattr(c, n) for n,c in _OWNERS.items()}
    for n,c in _OWNERS.items(): setattr(c, n, FASTAI[n])
    try: yield
    finally:
        for n,c in _OWNERS.items(): setattr(c, n, ours[n])
