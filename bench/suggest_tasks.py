"""The task configurations of `bench/suggest.py`: 16 small training set-ups, all generated offline, that differ in what
changes an LR range test (model family, loss, data size, label noise, batch size, optimizer, budget, fine-tuning a frozen
body). Half tune the default suggestion, half are held out; the split is fixed here, before any rule was tried.

Each fit takes a second or two on one CPU thread: a few hundred batches of a model with a few thousand weights."""
import functools, random
from dataclasses import dataclass, field
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.metrics import accuracy, accuracy_multi
from fastai.losses import LabelSmoothingCrossEntropy
from fastai.optimizer import Adam, SGD, RMSProp, Lamb
from fastai.torch_core import set_seed, params
import onecycle_ext  # noqa: F401  (fit_one_cycle, fine_tune, lr_find)

# ---- data: (x_train, y_train, x_valid, y_valid) tensors, fixed whatever the seed (the seed moves weights and order)

def _split(x, y, n_valid, seed=0):
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[idx[n_valid:]],y[idx[n_valid:]],x[idx[:n_valid]],y[idx[:n_valid]]

def _standardize(xt, xv):
    m,s = xt.mean(0, keepdim=True),xt.std(0, keepdim=True) + 1e-6
    return (xt-m)/s,(xv-m)/s

def _noisy(y, frac, n_classes, seed=1):
    "`y` with a fraction `frac` of its labels replaced by random classes"
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(y), generator=g) < frac
    return torch.where(flip, torch.randint(0, n_classes, (len(y),), generator=g), y)

@functools.lru_cache(None)
def mnist1d(n=5000, seed=42, **changes):
    "MNIST-1D generated with `n` samples and `seed` (80% train), its generator's other arguments at their defaults but `changes`"
    from mnist1d.data import make_dataset, get_dataset_args
    args = get_dataset_args(); args.num_samples = n; args.seed = seed
    for k,v in changes.items(): setattr(args, k, v)
    d = make_dataset(args)
    x,xv = torch.tensor(d['x'], dtype=torch.float32),torch.tensor(d['x_test'], dtype=torch.float32)
    m,s = x.mean(),x.std()
    return (x-m)/s,torch.tensor(d['y']),(xv-m)/s,torch.tensor(d['y_test'])

@functools.lru_cache(None)
def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    xt,yt,xv,yv = _split(torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target), 360)
    xt,xv = _standardize(xt, xv)
    return xt,yt,xv,yv

@functools.lru_cache(None)
def blobs(n, n_features, n_classes, flip_y, sep=1.0):
    from sklearn.datasets import make_classification
    x,y = make_classification(n, n_features, n_informative=n_features//2, n_classes=n_classes, n_clusters_per_class=2,
                              flip_y=flip_y, class_sep=sep, random_state=0)
    xt,yt,xv,yv = _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y), n//5)
    xt,xv = _standardize(xt, xv)
    return xt,yt,xv,yv

@functools.lru_cache(None)
def multilabel(n, n_features, n_classes):
    from sklearn.datasets import make_multilabel_classification
    x,y = make_multilabel_classification(n, n_features, n_classes=n_classes, n_labels=2, random_state=0)
    xt,yt,xv,yv = _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), n//5)
    xt,xv = _standardize(xt, xv)
    return xt,yt,xv,yv

@functools.lru_cache(None)
def friedman(n):
    from sklearn.datasets import make_friedman1
    x,y = make_friedman1(n, 10, noise=1.0, random_state=0)
    xt,yt,xv,yv = _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None], n//5)
    m,s = yt.mean(),yt.std()
    xt,xv = _standardize(xt, xv)
    return xt,(yt-m)/s,xv,(yv-m)/s

@functools.lru_cache(None)
def waves(n):
    "Regression: a smooth nonlinear function of 16 inputs plus noise, standardized"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    w1,w2 = torch.randn(16, generator=g),torch.randn(16, generator=g)
    y = torch.sin(x@w1/2) + 0.3*(x@w2/4)**2 + 0.3*torch.randn(n, generator=g)
    xt,yt,xv,yv = _split(x, ((y-y.mean())/y.std())[:, None], n//5)
    return xt,yt,xv,yv

@functools.lru_cache(None)
def sequences(n, length=20):
    "Sequence classification for a recurrent net: which of 4 quarters of the sequence holds the largest running sum"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, length, 1, generator=g)
    sums = x[:, :, 0].reshape(n, 4, length//4).sum(2)
    return _split(x, sums.argmax(1), n//5)

@functools.lru_cache(None)
def tokens(n, length=12, vocab=8):
    "Token sequences for an attention model: is the token after the first 0 larger than the token after the first 1"
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (n, length), generator=g)
    def after(v):
        pos = (x == v).int().argmax(1).clamp(max=length-2)
        return x[torch.arange(n), pos+1]
    return _split(x, (after(0) > after(1)).long(), n//5)

# ---- models

def mlp(n_in, n_out, nh=64, drop=0.):
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, nh), nn.ReLU(), nn.Dropout(drop), nn.Linear(nh, nh), nn.ReLU(), nn.Linear(nh, n_out))

def cnn1d(n_out=10, nf=24, bn=True):
    "Three conv blocks (with or without BatchNorm) and a linear head, for MNIST-1D's 40 values"
    def block(ni, ks, stride):
        return [nn.Conv1d(ni, nf, ks, stride=stride, padding=ks//2, bias=not bn)] + ([nn.BatchNorm1d(nf)] if bn else []) + [nn.ReLU()]
    return nn.Sequential(nn.Unflatten(1, (1, 40)), *block(1, 5, 1), *block(nf, 3, 2), *block(nf, 3, 2), nn.Flatten(), nn.Linear(nf*10, n_out))

class GRUNet(nn.Module):
    def __init__(self, n_out=4, nh=32):
        super().__init__(); self.rnn,self.head = nn.GRU(1, nh, batch_first=True),nn.Linear(nh, n_out)
    def forward(self, x): return self.head(self.rnn(x)[0][:, -1])

class Attn(nn.Module):
    "Embedding + positions, one pre-norm self-attention block, mean pooling"
    def __init__(self, vocab=8, length=12, d=32, n_out=2):
        super().__init__()
        self.emb,self.pos = nn.Embedding(vocab, d),nn.Parameter(torch.randn(length, d) * .1)
        self.norm,self.attn = nn.LayerNorm(d),nn.MultiheadAttention(d, 4, batch_first=True)
        self.ff,self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2*d), nn.ReLU(), nn.Linear(2*d, d)),nn.Linear(d, n_out)
    def block(self, x):
        h = self.emb(x) + self.pos
        n = self.norm(h); h = h + self.attn(n, n, n, need_weights=False)[0]
        return h + self.ff(h)
    def forward(self, x): return self.head(self.block(x).mean(1))

class Pretrained(nn.Module):
    "A body trained once (seed 0) on another task, and a new head: `fine_tune` freezes the body first"
    def __init__(self, body, n_feat, n_out): super().__init__(); self.body,self.head = body,nn.Linear(n_feat, n_out)
    def forward(self, x): return self.head(self.body(x))

@functools.lru_cache(None)
def _pretrained_body(kind):
    "Weights of a body trained on MNIST-1D's first 2500 samples, 10 classes (3 epochs of 1cycle, Adam 3e-3)"
    x,y,_,_ = mnist1d()
    set_seed(0, reproducible=True)
    body = mlp(40, 64)[:-1] if kind == 'mlp' else cnn1d(bn=True)[:-1]
    n_feat = 64 if kind == 'mlp' else 240
    model = Pretrained(body, n_feat, 10)
    ds = list(zip(x[:2500], y[:2500]))
    dls = DataLoaders(DataLoader(ds, bs=64, shuffle=True, drop_last=True), DataLoader(ds[:256], bs=256))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=Adam)
    _quiet(learn).fit_one_cycle(3, 3e-3)
    return {k: v.clone() for k,v in body.state_dict().items()},n_feat

# ---- configurations

@dataclass
class Task:
    name: str
    data: callable        # () -> x_train, y_train, x_valid, y_valid
    model: callable       # () -> nn.Module
    loss: str             # 'ce', 'mse' or 'bce'
    opt: callable
    bs: int
    epochs: int
    lrs: tuple            # the grid's range (4 points per decade)
    held_out: bool
    fine_tune: str = ''   # '' or the pretrained body's kind
    about: str = ''
    moms: tuple = (0.95, 0.85, 0.95)   # the Learner's, which `fit_one_cycle` cycles (fastai's default)

    @property
    def unit(self): return '% loss' if self.loss == 'mse' else 'points'

    def grid(self):
        lo,hi = np.log10(self.lrs[0]),np.log10(self.lrs[1])
        return [float(v) for v in np.round(10**np.linspace(lo, hi, int(round((hi-lo)*4))+1), 12)]

def _quiet(learn):
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

LOSSES = {'ce': (nn.CrossEntropyLoss, accuracy), 'mse': (nn.MSELoss, None), 'bce': (nn.BCEWithLogitsLoss, accuracy_multi),
          'ls': (LabelSmoothingCrossEntropy, accuracy)}   # 'ls': cross-entropy with label smoothing 0.1
SGDm = functools.partial(SGD, mom=0.9)

def _mnist1d_noisy(frac, n_train):
    x,y,xv,yv = mnist1d()
    return x[:n_train],_noisy(y[:n_train], frac, 10),xv,yv

def _mnist1d_parity():
    "The fine-tuning task: odd or even digit, on MNIST-1D's last 1000 training samples (the body never saw them)"
    x,y,xv,yv = mnist1d()
    return x[-1000:],y[-1000:] % 2,xv,yv % 2

TASKS = [
    # tuning half
    Task('digits_mlp', digits, lambda: mlp(64, 10), 'ce', Adam, 64, 4, (1e-4, 1), False, about='scikit-learn digits (1437), MLP'),
    Task('mnist1d_cnn_bn_sgd', lambda: mnist1d(), lambda: cnn1d(bn=True), 'ce', SGDm, 128, 3, (1e-3, 10), False,
         about='MNIST-1D (4000), CNN with BatchNorm'),
    Task('seq_gru', lambda: sequences(2000), GRUNet, 'ce', Adam, 32, 3, (1e-4, 1), False, about='synthetic sequences (1600), GRU'),
    Task('friedman_mse', lambda: friedman(600), lambda: mlp(10, 1), 'mse', Adam, 16, 6, (1e-4, 1), False,
         about='scikit-learn Friedman #1 (480), MLP regression'),
    Task('multilabel_rmsprop', lambda: multilabel(2000, 20, 8), lambda: mlp(20, 8), 'bce', RMSProp, 64, 4, (1e-5, 1e-1), False,
         about='scikit-learn multi-label (1600), MLP'),
    Task('noisy_blobs_bs16', lambda: blobs(500, 20, 4, 0.3), lambda: mlp(20, 4), 'ce', Adam, 16, 10, (1e-4, 1), False,
         about='scikit-learn classification (400), 30% label noise'),
    Task('big_blobs_1epoch_sgd', lambda: blobs(25000, 40, 8, 0.02), lambda: mlp(40, 8), 'ce', SGDm, 256, 1, (1e-3, 10), False,
         about='scikit-learn classification (20000), 1 epoch'),
    Task('finetune_mlp', _mnist1d_parity, lambda: Pretrained(mlp(40, 64)[:-1], 64, 2), 'ce', Adam, 32, 2, (1e-4, 1), False,
         fine_tune='mlp', about='MNIST-1D parity (1000), frozen pretrained MLP body'),
    # held-out half
    Task('mnist1d_mlp', lambda: mnist1d(), lambda: mlp(40, 10), 'ce', Adam, 128, 4, (1e-4, 1), True, about='MNIST-1D (4000), MLP'),
    Task('mnist1d_cnn_nobn_sgd', lambda: mnist1d(), lambda: cnn1d(bn=False), 'ce', SGDm, 64, 2, (1e-3, 10), True,
         about='MNIST-1D (4000), CNN without BatchNorm'),
    Task('tokens_attn_lamb', lambda: tokens(3000), Attn, 'ce', Lamb, 64, 4, (1e-4, 1), True,
         about='synthetic token sequences (2400), self-attention'),
    Task('waves_mse_sgd_bs512', lambda: waves(25000), lambda: mlp(16, 1), 'mse', SGDm, 512, 2, (1e-3, 10), True,
         about='synthetic regression (20000), MLP'),
    Task('multilabel_sgd', lambda: multilabel(1000, 30, 16), lambda: mlp(30, 16), 'bce', SGDm, 32, 5, (1e-3, 10), True,
         about='scikit-learn multi-label (800), MLP'),
    Task('mnist1d_noisy_cnn', lambda: _mnist1d_noisy(0.3, 4000), lambda: cnn1d(bn=True), 'ce', Adam, 256, 6, (1e-4, 1), True,
         about='MNIST-1D (4000), 30% label noise, CNN'),
    Task('digits_small_rmsprop', lambda: (digits()[0][:300], digits()[1][:300], *digits()[2:]),
         lambda: mlp(64, 10), 'ce', RMSProp, 16, 8, (1e-5, 1e-1), True, about='scikit-learn digits (300), MLP'),
    Task('finetune_cnn', _mnist1d_parity, lambda: Pretrained(cnn1d(bn=True)[:-1], 240, 2), 'ce', Adam, 32, 2, (1e-4, 1), True,
         fine_tune='cnn', about='MNIST-1D parity (1000), frozen pretrained CNN body'),
]
BY_NAME = {t.name: t for t in TASKS}

def learner(task, seed):
    "A fresh learner for `task`, its weights and data order fixed by `seed` (frozen body for a fine-tuning task)"
    x,y,xv,yv = task.data()
    set_seed(seed, reproducible=True)
    model = task.model()
    if task.fine_tune:
        weights,_ = _pretrained_body(task.fine_tune)
        model.body.load_state_dict(weights)
    ds,dv = list(zip(x, y)),list(zip(xv, yv))
    dls = DataLoaders(DataLoader(ds, bs=task.bs, shuffle=True, drop_last=len(ds) >= 2*task.bs), DataLoader(dv, bs=1024))
    for dl in dls.loaders: dl.rng = random.Random(seed)
    loss,metric = LOSSES[task.loss]
    kw = dict(splitter=lambda m: [params(m.body), params(m.head)]) if task.fine_tune else {}
    learn = Learner(dls, model, loss_func=loss(), opt_func=task.opt, metrics=[metric] if metric else [], moms=task.moms, **kw)
    if task.fine_tune: learn.freeze()
    return _quiet(learn)

def score(task, seed, lr):
    "Train `task` at `lr` with its recipe; accuracy for classification, validation loss for regression (inf if not finite)"
    learn = learner(task, seed)
    if task.fine_tune: learn.fine_tune(task.epochs, lr)
    else: learn.fit_one_cycle(task.epochs, lr)
    v = [float(u) for u in learn.recorder.values[-1]]
    if task.loss == 'mse': return v[1] if np.isfinite(v[1]) else float('inf')
    return v[2]
