"""The package from the outside: import order, the plots, the demo command, and the per-batch hot path."""
import subprocess, sys
from pathlib import Path
import matplotlib
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from conftest import synth
from onecycle_ext import OneCycleScheduler, ParamScheduler, SchedCos

PATCHED = {'Learner': ['fit', 'fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'fine_tune'],
           'Recorder': ['plot_sched', 'plot_lr', 'plot_lr_find']}

@pytest.mark.parametrize('first,second', [('import onecycle_ext', 'from fastai.vision.all import *'),
                                          ('from fastai.vision.all import *', 'import onecycle_ext')])
def test_import_order_does_not_matter(first, second):
    code = f"""{first}
{second}
from fastai.learner import Learner, Recorder
print(sorted(f"{{c}}.{{m}}={{getattr(eval(c), m).__module__}}" for c,ms in {PATCHED!r}.items() for m in ms))"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    modules = {line.split('=')[1] for line in eval(out.strip().splitlines()[-1])}
    assert modules <= {'onecycle_ext.fit', 'onecycle_ext.plots'}, out

def test_plots_return_figures(tmp_path):
    learn = synth()
    learn.fit_one_cycle(2, 1e-2)
    for fig,labels in [(learn.recorder.plot_sched(), ['lr', 'mom']), (learn.recorder.plot_lr(show_moms=True), ['lr', 'mom']),
                       (learn.recorder.plot_lr(), ['lr']),
                       (OneCycleScheduler(1e-2, three_phase=True).plot_preview(3, 10), ['lr', 'mom'])]:
        assert isinstance(fig, matplotlib.figure.Figure)
        assert [ax.get_ylabel() for ax in fig.axes if ax.get_visible()] == labels
        fig.savefig(tmp_path/'f.png')
        assert (tmp_path/'f.png').stat().st_size > 1000
    with pytest.raises(ValueError, match="keys holds 'wd'"): learn.recorder.plot_sched(keys=['wd'])

def test_demo_command(tmp_path):
    script = Path(sys.executable).parent/'onecycle-demo'  # the console script of this environment
    out = subprocess.run([str(script), '--epochs', '2', '--out', str(tmp_path)], capture_output=True, text=True, check=True)
    table = out.stdout.split('| schedule')[1].split('\n\n')[0]  # the schedules' table, up to the next blank line
    rows = [l.split('|') for l in table.splitlines() if l.startswith('| ')]
    assert [r[1].strip() for r in rows] == ['1cycle at the lr_find suggestion', 'constant lr at the suggestion', "PyTorch's OneCycleLR recipe"]
    assert all(0 <= float(r[2]) <= 1 for r in rows)
    assert {p.name for p in tmp_path.iterdir() if p.is_file()} == {'report.md', 'lr_find.png', 'sched.png', 'accuracy.png', 'around.png', 'resume.png'}
    assert 'bit-identical to' in out.stdout and '(suggested)' in out.stdout  # and the suggestion checked either side
    assert (tmp_path/'report.md').read_text() in out.stdout
    assert '\x1b' not in out.stdout and '|----' not in out.stdout  # no progress bar when not on a terminal
    for bad in (['--epochs', '0'], ['--device', 'tpu']):
        res = subprocess.run([sys.executable, '-m', 'onecycle_ext.demo', *bad], capture_output=True, text=True)
        assert res.returncode == 2 and 'Traceback' not in res.stderr and bad[0] in res.stderr

class _TorchCalls(TorchFunctionMode):
    "Records every torch function called while active"
    def __init__(self): super().__init__(); self.calls = []
    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(getattr(func, '__name__', str(func)))
        return func(*args, **(kwargs or {}))

@pytest.mark.parametrize('make', [lambda: OneCycleScheduler([1e-3, 1e-2]), lambda: OneCycleScheduler.from_torch(1e-2),
                                  lambda: ParamScheduler({'lr': SchedCos(np.array([1e-3, 1e-2]), 0.), 'wd': SchedCos(0.1, 0.)})])
def test_hot_path_calls_no_torch_function(make):
    "The per-batch work is plain float math: no torch function runs in the scheduler's events, so no tensor is made"
    learn = synth(2)
    sched = make()
    mode = _TorchCalls()
    original = type(sched).before_batch
    def watched(self):
        with mode: original(self)
    sched.before_batch = watched.__get__(sched)
    learn.fit(1, cbs=sched)
    assert len(learn.recorder.hps['lr']) == 10 and mode.calls == []
    assert all(type(v) is float for h in learn.opt.hypers for v in (h['lr'],))

def test_validate_and_get_preds_still_work():
    "all_batches is patched for resuming: fastai's other loops over data go through it unchanged"
    learn = synth()
    learn.fit_one_cycle(1, 1e-2)
    preds,targs = learn.get_preds()
    assert preds.shape == targs.shape and len(preds) == len(learn.dls.valid_ds)
    assert learn.validate()[0] == pytest.approx(float(((preds - targs)**2).mean()), rel=1e-5)

def test_no_callback_shadows_a_learner_attribute(tmp_path):
    "fastai warns when a callback sets an attribute the learner has (a bug waiting to happen); none of ours does"
    import warnings
    from onecycle_ext import Checkpoint
    from onecycle_ext.demo import run
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='.*shadowing an attribute.*')
        learn = synth(path=tmp_path)
        learn.fit_one_cycle(2, 1e-2, cbs=Checkpoint(every_iters=3))
        learn.lr_find(show_plot=False)
        learn.fit_sgdr(2, 1, cbs=Checkpoint(every_iters=3, fname='sgdr'))
        run(epochs=1, out=tmp_path/'demo')
