"""A training job for the kill-and-resume tests and `bench/resume.py`: run it in a child process, kill the
child (SIGKILL) at some moment, run it again with `resume=True`, and compare the final weights.

`kill` says where the job kills itself: ('batch', k) after k training batches, ('write', k) in the middle of
the k-th checkpoint write (the temporary file written, not yet renamed), ('valid', k) during the k-th
validation batch; None runs to the end."""
import os, random, signal
from pathlib import Path
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.optimizer import Adam
from fastai.torch_core import set_seed
import onecycle_ext.resume as resume_mod
from onecycle_ext import Checkpoint, PartialOneCycleScheduler

def _die(): os.kill(os.getpid(), signal.SIGKILL)

class KillAt(Callback):
    "SIGKILLs its own process after `at` training batches, or during the `at`-th validation batch"
    order = 101
    def __init__(self, where, at): self.where,self.at,self.n_valid,self.n_train = where,at,0,0
    def after_batch(self):
        self.n_train += self.training  # across fits: fine_tune runs two
        if self.where == 'batch' and self.training and self.n_train == self.at: _die()
        if self.where == 'valid' and not self.training:
            self.n_valid += 1
            if self.n_valid == self.at: _die()

class Count(Callback):
    "Counts the batches this process trains, across fits (in a list: a resumed fit puts back callbacks' plain attributes)"
    def __init__(self): self.counts = [0]
    def after_batch(self): self.counts[0] += self.training

def learner(path):
    set_seed(0)
    x = torch.randn(320, 8); y = (x[:, :2].sum(1) > 0).long()
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds[:256], bs=32, shuffle=True), DataLoader(ds[256:], bs=32))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=Adam, path=path)
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def train(path, method, resume=False, kill=None, every_iters=3):
    "Train with `method` and save the final weights to `path/final.pth`"
    torch.set_num_threads(1)
    if kill is not None and kill[0] == 'write':
        writes,replace = [0],os.replace
        def dying_replace(src, dst):
            writes[0] += 1
            if writes[0] == kill[1]: _die()
            replace(src, dst)
        resume_mod.os.replace = dying_replace
    learn = learner(Path(path))
    count = Count()
    cbs = [Checkpoint(every_iters=every_iters), count] + ([KillAt(*kill)] if kill is not None and kill[0] != 'write' else [])
    if method == 'fit_one_cycle': learn.fit_one_cycle(4, 1e-2, cbs=cbs, resume=resume)
    elif method == 'fit_flat_cos': learn.fit_flat_cos(4, 1e-2, cbs=cbs, resume=resume)
    elif method == 'partial': learn.fit(3, cbs=[PartialOneCycleScheduler(1e-2, tot_epochs=6, start_epoch=2)] + cbs, resume=resume)
    elif method == 'fine_tune':
        learn.splitter = lambda m: [list(m[0].parameters()), list(m[3].parameters())]
        learn.fine_tune(2, 1e-2, freeze_epochs=1, cbs=cbs, resume=resume)
    else: raise ValueError(method)
    torch.save(learn.model.state_dict(), Path(path)/'final.pth')
    (Path(path)/'trained.txt').write_text(str(count.counts[0]))

def run_in_child(path, method, resume=False, kill=None, timeout=120):
    "Run `train` in a forked child; returns its exit code (-9 when it was killed)"
    import multiprocessing as mp
    p = mp.get_context('fork').Process(target=train, args=(path, method, resume, kill))
    p.start(); p.join(timeout)
    if p.is_alive(): p.kill(); p.join(); raise TimeoutError(f"{method} {kill} did not finish in {timeout} s")
    return p.exitcode
