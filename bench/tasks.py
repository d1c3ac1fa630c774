"Small training tasks that need no download, shared by the benchmarks: MNIST-1D (CNN, MLP) and scikit-learn's digits (MLP)."
import random
import numpy as np
import torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.optimizer import Adam
from fastai.torch_core import set_seed
from onecycle_ext.demo import mnist1d_dls, cnn1d

def _digits_dls(bs=64):
    from sklearn.datasets import load_digits
    d = load_digits()
    x,y = torch.tensor(d.data, dtype=torch.float32),torch.tensor(d.target)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x = (x - x[idx[:1437]].mean(0)) / (x[idx[:1437]].std(0) + 1e-6)
    ds = list(zip(x, y))
    return DataLoaders(DataLoader([ds[i] for i in idx[:1437]], bs=bs, shuffle=True, drop_last=True),
                       DataLoader([ds[i] for i in idx[1437:]], bs=bs*4))

def mlp(n_in, n_out=10, nh=100):
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, nh), nn.ReLU(), nn.Linear(nh, nh), nn.ReLU(), nn.Linear(nh, n_out))

_DLS = {}
def dls_for(task):
    "The task's DataLoaders, made once per process (the data does not depend on the seed)"
    if task not in _DLS: _DLS[task] = _digits_dls() if task == 'digits_mlp' else mnist1d_dls()
    return _DLS[task]

MODELS = {'mnist1d_cnn': cnn1d, 'mnist1d_mlp': lambda: mlp(40), 'digits_mlp': lambda: mlp(64)}
TASKS = list(MODELS)

def learner(task, seed):
    "A fresh learner for `task`, its weights and data order fixed by `seed`"
    set_seed(seed, reproducible=True)
    dls = dls_for(task)
    for dl in dls.loaders: dl.rng = random.Random(seed)  # the shared DataLoaders' order must not depend on earlier runs
    learn = Learner(dls, MODELS[task](), loss_func=nn.CrossEntropyLoss(), opt_func=Adam, metrics=accuracy)
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def accuracy_after(task, seed, lr, epochs=8):
    "Final validation accuracy of `fit_one_cycle(epochs, lr)` on `task`"
    learn = learner(task, seed)
    learn.fit_one_cycle(epochs, lr)
    return float(learn.recorder.values[-1][2])
