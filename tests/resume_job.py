"""Training jobs for the kill-and-resume matrix (tests/test_resume_matrix.py, bench/resume.py), each run in a process
of its own, the way a crashed job is run again:

    python tests/resume_job.py [--resume] [--kill WHERE:K] SETUP=FOLDER [SETUP=FOLDER ...]

trains each SETUP (a key of `SETUPS`: an optimizer, a loss, a callback, a fit method, a model or a loader) in its
FOLDER, with `Checkpoint(every_iters=EVERY)`, and saves what the run ended with to FOLDER/final.pth: weights, optimizer
state, `recorder.values`, the CSV logs and how many batches this process trained. `--kill` SIGKILLs the process
after K training batches (`batch:K`), during the K-th validation batch (`valid:K`) or in the middle of the K-th
checkpoint write (`write:K`: its temporary file written, not yet renamed, on the background thread while training
goes on), after writing how many batches it had trained to FOLDER/killed_at.txt."""
import argparse, multiprocessing, os, random, signal, sys, threading, traceback, warnings
from functools import partial
from pathlib import Path
warnings.filterwarnings('ignore')
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback
from fastai.callback.mixup import CutMix, MixUp
from fastai.callback.progress import CSVLogger
from fastai.callback.tracker import EarlyStoppingCallback, ReduceLROnPlateau, SaveModelCallback
from fastai.callback.training import GradientAccumulation
from fastai.data.core import DataLoaders, TfmdDL, Transform
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.optimizer import Adam, Lamb, OptimWrapper, QHAdam, RAdam, SGD, ranger
from fastai.torch_core import set_seed
from onecycle_ext.saving import _plain
from onecycle_ext import Checkpoint, OneCycleScheduler, PartialOneCycleScheduler

EVERY = 3  # batches between checkpoints; 8 training batches an epoch, 2 validation batches

class Counted:
    "Items `x[i], y[i]`, counting the loads in a counter the loader's worker processes share (they are forked)"
    def __init__(self, x, y): self.x,self.y,self.loads = x,y,multiprocessing.Value('l', 0)
    def __len__(self): return len(self.x)
    def __getitem__(self, i):
        with self.loads.get_lock(): self.loads.value += 1
        return self.x[i],self.y[i]

class Noisy(Counted):
    "Items drawn with fresh noise each time, as random augmentation does (in the loader's workers when it has some)"
    def __getitem__(self, i):
        x,y = super().__getitem__(i)
        return x + 0.1*torch.randn(x.shape),y

class ItemNoise(Transform):
    "Per-item augmentation, in a `TfmdDL`'s workers: noise from the torch and python streams"
    def encodes(self, x:torch.Tensor): return x + 0.1*torch.randn(x.shape)*random.random() if x.is_floating_point() else x

class BatchNoise(Transform):
    "Batch augmentation, which fastai runs in the main process: scales each batch's inputs by a random factor"
    def encodes(self, x:torch.Tensor): return x*(0.9 + 0.2*torch.rand(1)) if x.is_floating_point() else x

class RandomEpoch(Callback):
    "Draws random numbers as each epoch and its training start, which then scale the gradients"
    def before_epoch(self): self.a = torch.rand(1).item()
    def before_train(self): self.b = random.random()
    def after_loss(self): self.learn.loss_grad = self.learn.loss_grad * (1 + 0.1*(self.a - self.b))

class Count(Callback):
    "Counts the training batches this process runs, across fits (a list: resume puts back callbacks' plain attributes)"
    order = 101
    def __init__(self, kill=None): self.counts,self.kill,self.n_valid = [0],kill,0
    def after_batch(self):
        self.counts[0] += self.training
        if self.kill is None: return
        where,k = self.kill
        if where == 'batch' and self.training and self.counts[0] == k: self.die()
        if where == 'valid' and not self.training:
            self.n_valid += 1
            if self.n_valid == k: self.die()
    def die(self):
        # A batch or validation kill comes once the save in flight has landed, so the newest checkpoint is the last one
        # taken; a kill while a save is being written in the background is the `write:K` kind.
        if threading.current_thread() is threading.main_thread():
            for cb in self.learn.cbs:
                if isinstance(cb, Checkpoint): cb.saver.wait()
        (Path(self.learn.path)/'killed_at.txt').write_text(str(self.counts[0]))
        os.kill(os.getpid(), signal.SIGKILL)

def _data(images=False, workers=0, tfmd=False, persistent=False):
    "Shuffled training batches of items with noise: a `DataLoader`'s or a `TfmdDL`'s augmentation, with or without workers"
    x = torch.randn(320, 8); y = (x[:, :2].sum(1) > 0).long()
    if images: x = x.repeat(1, 8).view(-1, 1, 8, 8)
    if tfmd: return DataLoaders(TfmdDL(Counted(x[:256], y[:256]), bs=32, shuffle=True, num_workers=workers, after_item=ItemNoise(),
                                       after_batch=BatchNoise()), TfmdDL(Counted(x[256:], y[256:]), bs=32, num_workers=workers))
    ds = Noisy if workers else lambda x,y: list(zip(x, y))
    return DataLoaders(DataLoader(ds(x[:256], y[:256]), bs=32, shuffle=True, num_workers=workers, persistent_workers=persistent),
                       DataLoader(ds(x[256:], y[256:]), bs=32, num_workers=workers))

def _model(bn=False, images=False):
    return nn.Sequential(*([nn.Flatten()] if images else []), nn.Linear(64 if images else 8, 32),
                         *([nn.BatchNorm1d(32)] if bn else []), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))

def learner(path, opt_func=Adam, loss_func=None, bn=False, images=False, **data):
    "A small classifier with dropout on shuffled data (`_data(images, **data)`), in 2 parameter groups, quiet"
    set_seed(0)
    learn = Learner(_data(images, **data), _model(bn, images), loss_func=loss_func or CrossEntropyLossFlat(),
                    opt_func=opt_func, path=path, splitter=lambda m: [list(m[:-1].parameters()), list(m[-1].parameters())])
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def one_cycle(learn, cbs, resume): learn.fit_one_cycle(4, 1e-2, cbs=cbs, resume=resume)

def fine_tune(learn, cbs, resume): learn.fine_tune(2, 1e-2, freeze_epochs=1, cbs=cbs, resume=resume)

def discriminative(learn, cbs, resume):
    learn.freeze()
    learn.fit_one_cycle(3, slice(1e-3, 1e-2), cbs=cbs, resume=resume)

def append_log(learn, cbs, resume):
    "CSVLogger(append=True) after an earlier run's lines"
    if not resume: (learn.path/'history.csv').write_text('an,earlier,run\n')
    learn.fit_one_cycle(3, 1e-2, cbs=[CSVLogger(append=True)] + cbs, resume=resume)

def with_cbs(*extra, fit=one_cycle):
    "A fit with callbacks made afresh in each run"
    return lambda learn, cbs, resume: fit(learn, [f() for f in extra] + cbs, resume)

OPTIMIZERS = {'adam': Adam, 'sgd': SGD, 'radam': RAdam, 'qhadam': QHAdam, 'lamb': Lamb, 'ranger': ranger,
              'adam_wd': partial(Adam, wd=0.01), 'sgd_mom': partial(SGD, mom=0.9),
              'torch_adamw': partial(OptimWrapper, opt=torch.optim.AdamW),
              'torch_nesterov': partial(OptimWrapper, opt=partial(torch.optim.SGD, momentum=0.9, nesterov=True))}

# name: (learner's keywords, fit(learn, cbs, resume))
SETUPS = {
    **{name: (dict(opt_func=o), one_cycle) for name,o in OPTIMIZERS.items()},
    'loss_lambda': (dict(loss_func=lambda out, y: F.cross_entropy(out, y)), one_cycle),
    'loss_partial': (dict(loss_func=partial(F.cross_entropy, label_smoothing=0.1)), one_cycle),
    'fit_flat_cos': ({}, lambda learn, cbs, resume: learn.fit_flat_cos(4, 1e-2, cbs=cbs, resume=resume)),
    'fit_sgdr': ({}, lambda learn, cbs, resume: learn.fit_sgdr(2, 1, 1e-2, cbs=cbs, resume=resume)),
    'partial_cycle': ({}, lambda learn, cbs, resume: learn.fit(3, cbs=[PartialOneCycleScheduler(1e-2, tot_epochs=6, start_epoch=2)] + cbs,
                                                               resume=resume)),
    'from_torch': ({}, lambda learn, cbs, resume: learn.fit(4, cbs=[OneCycleScheduler.from_torch(1e-2, three_phase=True)] + cbs,
                                                            resume=resume)),
    'fine_tune': ({}, fine_tune),
    'discriminative': ({}, discriminative),
    'batchnorm': (dict(bn=True), one_cycle),
    'workers': (dict(workers=2), one_cycle),
    'grad_accum': ({}, with_cbs(partial(GradientAccumulation, n_acc=64))),
    # 'best' is the highest loss here, so the model loaded at the end is epoch 0's, not the last.
    'save_model': ({}, with_cbs(partial(SaveModelCallback, monitor='valid_loss', comp=np.greater))),
    'early_stop': ({}, with_cbs(partial(EarlyStoppingCallback, monitor='valid_loss', min_delta=10., patience=1))),
    'reduce_lr': ({}, with_cbs(partial(ReduceLROnPlateau, monitor='valid_loss', min_delta=10., patience=0),
                               fit=lambda learn, cbs, resume: learn.fit(4, 1e-2, cbs=cbs, resume=resume))),
    'csv_log': ({}, with_cbs(CSVLogger)),
    'csv_append': ({}, append_log),
    'mixup': ({}, with_cbs(MixUp)),
    'cutmix': (dict(images=True), with_cbs(CutMix)),
    'random_epoch': ({}, with_cbs(RandomEpoch)),
    # Loaders that count their loads: a resumed fit loads only the batches it trains.
    'workers3': (dict(workers=3), one_cycle),
    'persistent_workers': (dict(workers=2, persistent=True), one_cycle),
    'tfmd': (dict(tfmd=True), one_cycle),
    'tfmd_workers': (dict(workers=2, tfmd=True), one_cycle),
}

def _dying_replace(count, k):
    "`os.replace` for checkpoint writes that dies in the middle of the `k`-th one"
    writes,replace = [0],os.replace
    def dying(src, dst):
        writes[0] += 1
        if writes[0] == k: count.die()
        replace(src, dst)
    return dying

def run(setup, folder, resume=False, kill=None):
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    kw,fit = SETUPS[setup]
    learn = learner(folder, **kw)
    loads = getattr(learn.dls.train.dataset, 'loads', None)  # what the training loader loads, if it counts
    count = Count(kill if kill is not None and kill[0] != 'write' else None)
    os.replace = _dying_replace(count, kill[1]) if kill is not None and kill[0] == 'write' else os.replace
    fit(learn, [Checkpoint(every_iters=EVERY), count], resume)
    logs = {p.name: [line.rsplit(',', 1)[0] for line in p.read_text().splitlines()] for p in folder.glob('*.csv')}  # without times
    torch.save({'model': learn.model.state_dict(), 'opt': _plain(learn.opt.state_dict()),
                'values': _plain(learn.recorder.values), 'logs': logs, 'trained': count.counts[0],
                'loads': None if loads is None else loads.value}, folder/'final.pth')

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--resume', action='store_true'); p.add_argument('--kill')
    p.add_argument('jobs', nargs='+', metavar='SETUP=FOLDER')
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    kill = (a.kill.split(':')[0], int(a.kill.split(':')[1])) if a.kill else None
    failed = 0
    for job in a.jobs:  # one job's failure is written to its FOLDER/error.txt and does not stop the others
        setup,folder = job.split('=', 1)
        try: run(setup, folder, a.resume, kill)
        except Exception:
            failed += 1
            (Path(folder)/'error.txt').write_text(traceback.format_exc())
    sys.exit(failed and 1)

if __name__ == '__main__': main()
