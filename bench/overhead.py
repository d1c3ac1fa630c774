"""Cost per batch of the scheduler callback: ours against fastai 2.8.12's `ParamScheduler`, side by side.

Both schedule the same 1cycle (fastai's `fit_one_cycle` schedules: lr and mom) in real fits of the demo's
1-D CNN on MNIST-1D, alternating ours and fastai's in one process. Only the callback's own event methods
are timed (every method the class defines among fastai's events), summed over the fit and divided by the
number of training batches. The timer's own cost is measured in the same fits on an empty callback with
the same events (`Empty`) and subtracted (the "net" columns). PyTorch's `OneCycleLR.step()` on the same
optimizer groups is timed as an anchor, and the whole training batch to show the scheduler's share of it.

    .venv/bin/python bench/overhead.py [--reps 7] [--epochs 5] [--write]
"""
import argparse, os, sys, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import numpy as np
import torch
from fastai.callback.core import _events, Callback
from fastai.callback.schedule import ParamScheduler as FastaiParamScheduler, combined_cos as fastai_combined_cos
from fastai.learner import Learner
from fastai.optimizer import Adam
from torch import nn
import onecycle_ext
from onecycle_ext import OneCycleScheduler
from onecycle_ext.demo import mnist1d_dls, cnn1d
sys.path.insert(0, os.path.dirname(__file__))
from results import publish

def timed(cb):
    "Wrap `cb`'s event methods so the time spent in them is summed into `cb.elapsed` (ns)"
    cb_elapsed = [0]
    for ev in _events:
        f = getattr(type(cb), ev, None)
        if f is None: continue
        def wrapper(f=f):
            t = time.perf_counter_ns(); f(cb); cb_elapsed[0] += time.perf_counter_ns() - t
        object.__setattr__(cb, ev, wrapper)
    return cb_elapsed

class Empty(Callback):
    "Same events as a scheduler, doing nothing: what the timer itself costs"
    order,run_valid = 60,False
    def before_fit(self): pass
    def before_batch(self): pass
    def after_batch(self): pass
    def after_fit(self): pass

class BatchTimer(Callback):
    "Wall time of whole training batches (first callback before, last after)"
    order,run_valid = -100,False
    def before_fit(self): self.total = 0
    def before_batch(self): self.t = time.perf_counter_ns()
    def after_step(self): self.total += time.perf_counter_ns() - self.t

def fastai_one_cycle(learn, lr_max):
    "fastai 2.8.12's `fit_one_cycle` schedules, in its own `ParamScheduler`"
    lr_max = np.array(lr_max)
    return FastaiParamScheduler({'lr': fastai_combined_cos(0.25, lr_max/25., lr_max, lr_max/1e5),
                                 'mom': fastai_combined_cos(0.25, *learn.moms)})

def learner(n_groups, dls):
    learn = Learner(dls, cnn1d(), loss_func=nn.CrossEntropyLoss(), opt_func=Adam)
    if n_groups == 2: learn.splitter = lambda m: [list(m[:4].parameters()), list(m[4:].parameters())]
    return learn

def torch_step_us(n_groups, n=2000):
    params = [nn.Parameter(torch.zeros(1)) for _ in range(n_groups)]
    opt = torch.optim.Adam([{'params': [p]} for p in params])
    s = torch.optim.lr_scheduler.OneCycleLR(opt, [1e-2]*n_groups, total_steps=n+1)
    t = time.perf_counter_ns()
    for _ in range(n): s.step()
    return (time.perf_counter_ns() - t) / n / 1e3

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=7); p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--write', action='store_true', help='write the table into bench/RESULTS.md')
    a = p.parse_args()
    torch.set_num_threads(1)
    dls = mnist1d_dls()
    rows = []
    for n_groups in (1, 2):
        lr_max = [1e-3, 1e-2][-n_groups:]
        times = {k: [] for k in ('ours', 'fastai', 'timer', 'batch')}
        n_batches = a.epochs * len(dls.train)
        for rep in range(a.reps):
            for name in ('ours', 'fastai') if rep % 2 == 0 else ('fastai', 'ours'):
                learn = learner(n_groups, dls)
                cb = OneCycleScheduler(lr_max) if name == 'ours' else fastai_one_cycle(learn, lr_max)
                empty,batch = Empty(),BatchTimer()
                elapsed,timer = timed(cb),timed(empty)
                with learn.no_bar(), learn.no_logging(): learn.fit(a.epochs, cbs=[cb, empty, batch])
                times[name].append(elapsed[0] / 1e3 / n_batches)
                times['timer'].append(timer[0] / 1e3 / n_batches)
                times['batch'].append(batch.total / 1e3 / n_batches)
        ours,theirs,timer,batch = (np.median(times[k]) for k in ('ours', 'fastai', 'timer', 'batch'))
        rows.append((n_groups, ours, theirs, theirs/ours, ours-timer, theirs-timer, (theirs-timer)/(ours-timer),
                     torch_step_us(n_groups), batch))
    table = ["| param groups | ours (us/batch) | fastai (us/batch) | fastai / ours | ours net | fastai net | fastai / ours, net "
             "| torch OneCycleLR.step (us) | whole batch (us) |",
             "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {g} | {o:.1f} | {t:.0f} | {r:.0f}x | {on:.1f} | {tn:.0f} | {rn:.0f}x | {ts:.1f} | {b:.0f} |"
              for g,o,t,r,on,tn,rn,ts,b in rows]
    publish('overhead', "Scheduler overhead (`bench/overhead.py`)",
            f"1cycle (lr and mom) in fits of {a.epochs} epochs x {len(dls.train)} batches, median of {a.reps} fits each, "
            "ours and fastai's alternating in one process; time inside the callback's event methods per training batch. "
            "Net: less the timer's own cost, measured on an empty callback in the same fits. "
            "Goal: fastai / ours >= 20.",
            table, a.write)

if __name__ == '__main__': main()
