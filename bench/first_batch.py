"""Time from the start of a resumed fit to its first trained batch, for a checkpoint taken at the start, the middle and
the end of a long epoch of expensive items (0.5 ms each, 400 batches of 16), without worker processes and with 2,
side by side: resuming at the batch (`_start_at`: the batches before are not loaded) and drawing the batches before
it (`_start_at` switched off, as the resume did before: for workers, until their batches were seeded one by one).

    .venv/bin/python bench/first_batch.py [--reps 3] [--write]
"""
import argparse, os, sys, tempfile, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
from pathlib import Path
import numpy as np
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
sys.path.insert(0, os.path.dirname(__file__))
from results import publish
import onecycle_ext.resume as resume_mod
from onecycle_ext import Checkpoint

N_BATCH,BS,ITEM_S = 400,16,5e-4

class Slow:
    "Items that cost ITEM_S each to load, with per-item noise"
    def __init__(self, n): self.x,self.y = torch.randn(n, 8),torch.randint(0, 2, (n,))
    def __len__(self): return len(self.x)
    def __getitem__(self, i):
        end = time.perf_counter() + ITEM_S
        while time.perf_counter() < end: pass
        return self.x[i] + 0.1*torch.randn(8), self.y[i]

class Stop(Callback):
    "Records when the fit starts and its first trained batch begins; stops the fit after training batch `at` (its first: None)"
    order = 101
    def __init__(self, at=None): self.at,self.times = at,{}
    def before_fit(self): self.times['fit'] = time.perf_counter()
    def before_batch(self):
        if self.training: self.times.setdefault('batch', time.perf_counter())
    def after_batch(self):
        if self.training and (self.at is None or self.learn.train_iter == self.at): raise KeyboardInterrupt

def learner(path, workers):
    torch.manual_seed(0)
    dls = DataLoaders(DataLoader(Slow(N_BATCH*BS), bs=BS, shuffle=True, num_workers=workers), DataLoader(Slow(BS), bs=BS))
    learn = Learner(dls, nn.Linear(8, 2), loss_func=nn.CrossEntropyLoss(), path=path)
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def to_first_batch(path, at, draw, workers):
    "Seconds from the resumed fit's start to its first trained batch, the checkpoint taken after batch `at`"
    try: learner(path, workers).fit(1, 1e-3, cbs=[Checkpoint(every_iters=at, every_epoch=False), Stop(at)])
    except KeyboardInterrupt: pass
    start_at = resume_mod._start_at
    if draw: resume_mod._start_at = lambda *a: False  # the batches before the checkpoint are drawn
    stop = Stop()
    try: learner(path, workers).fit(1, 1e-3, cbs=[Checkpoint(every_iters=at, every_epoch=False), stop], resume=True)
    except KeyboardInterrupt: pass
    finally: resume_mod._start_at = start_at
    return stop.times['batch'] - stop.times['fit']

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=3); p.add_argument('--write', action='store_true')
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = ["| worker processes | checkpoint after batch | resumed at the batch (s) | drawing the batches before (s) |",
            "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        for workers in (0, 2):
            for at in (10, 200, 390):
                t = {draw: [] for draw in (False, True)}
                for rep in range(a.reps):
                    for draw in ((False, True) if rep % 2 == 0 else (True, False)):
                        t[draw].append(to_first_batch(Path(d)/f'{workers}-{at}-{rep}-{draw}', at, draw, workers))
                rows.append(f"| {workers} | {at} of {N_BATCH} | {np.median(t[False]):.3f} | {np.median(t[True]):.3f} |")
    publish('first_batch', "Resuming at the batch (`bench/first_batch.py`)",
            f"A resumed fit's time from its start to its first trained batch, median of {a.reps}, for a checkpoint in an epoch "
            f"of {N_BATCH} batches of {BS} items costing {ITEM_S*1e3:.1f} ms each (per-item noise), without worker processes "
            "and with 2. Goal: the same wherever the checkpoint was taken. Side by side, the same resume drawing the batches "
            "before the checkpoint without training them, as it did before (with workers, until their batches were seeded "
            "one by one). With workers the time is mostly starting them and loading the first batches.", rows, a.write)

if __name__ == '__main__': main()
