"""A fresh held-out set for `bench/suggest.py`: 10 task configurations that no suggestion rule was tuned or looked at on.

The 16 tasks of `bench/suggest_tasks.py` were all seen while rules were designed, so their held-out half no longer is.
These 10 were defined, and their grids fixed, from grid scores alone, and committed before any suggestion rule was run on
them. They differ from the 16 (and from each other) in model family, loss, data size, label noise, batch size,
optimizer, budget and fine-tuning; all data is generated here with its own seeds (no download, no dataset of the old
tasks). Every validation set has 1000 samples or more, so one seed's score is not noise.

    timeout 3600 .venv/bin/python bench/suggest_fresh.py --fill [--seeds S ...] [--tasks NAME ...]   # grids, curves
    .venv/bin/python bench/suggest_fresh.py --grid                                                   # grid table

`--fill` writes bench/suggest_fresh_cache.json (`suggest.Cache`: every grid rate and seed, and each seed's range test).
"""
import argparse, functools, math, os, sys, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import numpy as np
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
import suggest_tasks
from suggest_tasks import Task, Pretrained, _split, _standardize, _noisy, _quiet, SGDm
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.optimizer import Adam, SGD, RMSProp, Lamb, ranger, OptimWrapper
from fastai.torch_core import set_seed

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_fresh_cache.json')
SEEDS = list(range(5))

def _gen(seed): return torch.Generator().manual_seed(seed)

# ---- data: (x_train, y_train, x_valid, y_valid), fixed whatever the training seed

@functools.lru_cache(None)
def spirals(n_train, n_valid=1000, arms=3, turns=1.25):
    "Points on `arms` interleaved spiral arms in the plane (class = arm), jittered"
    g = _gen(101); n = n_train + n_valid
    y = torch.randint(0, arms, (n,), generator=g)
    t = torch.rand(n, generator=g)
    ang = 2*math.pi*(y/arms + turns*t)
    x = torch.stack([t*ang.cos(), t*ang.sin()], 1) + 0.04*torch.randn(n, 2, generator=g)
    return _split(x/x.std(0), y, n_valid, seed=101)

SHAPES = 6
def _shape(k, size=5):
    "Stencil of shape `k`: horizontal bar, vertical bar, square outline, cross, diagonal, L"
    s = torch.zeros(size, size); m = size//2
    if k == 0: s[m] = 1
    elif k == 1: s[:, m] = 1
    elif k == 2: s[0] = s[-1] = s[:, 0] = s[:, -1] = 1
    elif k == 3: s[m] = 1; s[:, m] = 1
    elif k == 4: s[range(size), range(size)] = 1
    else: s[:, 0] = 1; s[-1] = 1
    return s

@functools.lru_cache(None)
def shapes(n_train, n_valid, classes=4, seed=202, noise=0.4, side=12):
    "`side`x`side` images of one shape among `classes` at a random place, scaled and blurred by Gaussian noise"
    g = _gen(seed); n = n_train + n_valid
    y = torch.randint(0, classes, (n,), generator=g)
    pos = torch.randint(0, side-4, (n, 2), generator=g)
    amp = 0.7 + 0.6*torch.rand(n, generator=g)
    x = noise*torch.randn(n, 1, side, side, generator=g)
    stencils = torch.stack([_shape(k) for k in range(SHAPES)])
    for i in range(n):
        r,c = pos[i].tolist()
        x[i, 0, r:r+5, c:c+5] += amp[i]*stencils[y[i]]
    return _split(x, y, n_valid, seed=seed)

@functools.lru_cache(None)
def chirps(n_train, n_valid=2000, classes=6, length=64, flip=0.15):
    "1-D signals: a burst whose frequency band is the class, at a random place and phase, in noise; training labels noisy"
    g = _gen(303); n = n_train + n_valid
    y = torch.randint(0, classes, (n,), generator=g)
    freq = 0.05 + 0.05*(y + torch.rand(n, generator=g)*0.8)          # cycles per sample, bands apart by 0.05
    t = torch.arange(length).float()
    centre,width = 16 + 32*torch.rand(n, 1, generator=g),6 + 6*torch.rand(n, 1, generator=g)
    phase = 2*math.pi*torch.rand(n, 1, generator=g)
    x = torch.exp(-((t-centre)/width)**2) * torch.sin(2*math.pi*freq[:, None]*t + phase) + 0.5*torch.randn(n, length, generator=g)
    xt,yt,xv,yv = _split(x, y, n_valid, seed=303)
    return xt,_noisy(yt, flip, classes, seed=304),xv,yv

@functools.lru_cache(None)
def walks(n_train, n_valid=1000, length=20):
    "Regression on sequences: the highest point of the random walk they trace, plus noise, standardized"
    g = _gen(404); n = n_train + n_valid
    x = torch.randn(n, length, 1, generator=g)
    y = x[:, :, 0].cumsum(1).max(1).values + 0.6*torch.randn(n, generator=g)
    return _split(x, ((y-y.mean())/y.std())[:, None], n_valid, seed=404)

@functools.lru_cache(None)
def majority(n_train, n_valid=2000, length=24, vocab=10):
    "Token sequences: the class is the most frequent token (the smallest one on ties)"
    g = _gen(505); n = n_train + n_valid
    x = torch.randint(0, vocab, (n, length), generator=g)
    counts = torch.stack([(x == v).sum(1) for v in range(vocab)], 1)
    return _split(x, counts.argmax(1), n_valid, seed=505)

@functools.lru_cache(None)
def tags(n_train, n_valid=1000, n_in=24, n_tags=10):
    "Multi-label: tag j when a noisy nonlinear score of the inputs passes its threshold (about 30% positives)"
    g = _gen(606); n = n_train + n_valid
    x = torch.randn(n, n_in, generator=g)
    w,u = torch.randn(n_in, n_tags, generator=g)/math.sqrt(n_in),torch.randn(n_in, n_tags, generator=g)/math.sqrt(n_in)
    s = x@w + torch.tanh(2*x@u) + 0.3*torch.randn(n, n_tags, generator=g)
    y = (s > s.quantile(0.7, dim=0)).float()
    return _split(x, y, n_valid, seed=606)

@functools.lru_cache(None)
def surface(n_train, n_valid=2000, n_in=20, noise=0.2, seed=707):
    "Regression: a product, a cosine and a ReLU of random projections of the inputs, plus noise, standardized"
    g = _gen(seed); n = n_train + n_valid
    x = torch.randn(n, n_in, generator=g)
    a,b,c,d = (torch.randn(n_in, generator=g)/math.sqrt(n_in) for _ in range(4))
    y = torch.tanh(x@a)*(x@b) + torch.cos(1.5*x@c) + torch.relu(x@d) + noise*torch.randn(n, generator=g)
    xt,yt,xv,yv = _split(x, y[:, None], n_valid, seed=seed)
    m,s = yt.mean(),yt.std()
    return xt,(yt-m)/s,xv,(yv-m)/s

@functools.lru_cache(None)
def mixture(n_train, n_valid=1500, n_in=10, classes=5, flip=0.4):
    "Each class a mixture of 3 Gaussian clusters in 10-D; a fraction `flip` of the training labels replaced at random"
    g = _gen(808); n = n_train + n_valid
    centres = 1.6*torch.randn(classes*3, n_in, generator=g)
    k = torch.randint(0, classes*3, (n,), generator=g)
    x = centres[k] + torch.randn(n, n_in, generator=g)
    xt,yt,xv,yv = _split(x, k % classes, n_valid, seed=808)
    xt,xv = _standardize(xt, xv)
    return xt,_noisy(yt, flip, classes, seed=809),xv,yv

# ---- models

def mlp(n_in, n_out, nh=64, depth=2, bn=False, act=nn.ReLU):
    layers = []
    for i in range(depth): layers += [nn.Linear(n_in if i == 0 else nh, nh)] + ([nn.BatchNorm1d(nh)] if bn else []) + [act()]
    return nn.Sequential(*layers, nn.Linear(nh, n_out))

def cnn2d(n_out, nf=16, bn=False):
    "Three 3x3 conv blocks on 12x12 images (the last two with stride 2), then a linear head on the 3x3 map"
    def block(ni, no, stride):
        return [nn.Conv2d(ni, no, 3, stride=stride, padding=1, bias=not bn)] + ([nn.BatchNorm2d(no)] if bn else []) + [nn.ReLU()]
    return nn.Sequential(*block(1, nf, 1), *block(nf, 2*nf, 2), *block(2*nf, 2*nf, 2), nn.Flatten(), nn.Linear(2*nf*9, n_out))

def cnn1d_bn(n_out, nf=16, length=64):
    "Four conv blocks with BatchNorm on 1-D signals, global average pooling, linear head"
    def block(ni, ks, stride): return [nn.Conv1d(ni, nf, ks, stride=stride, padding=ks//2, bias=False), nn.BatchNorm1d(nf), nn.ReLU()]
    return nn.Sequential(nn.Unflatten(1, (1, length)), *block(1, 7, 1), *block(nf, 5, 2), *block(nf, 5, 2), *block(nf, 3, 2),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(nf, n_out))

class LSTMReg(nn.Module):
    "One LSTM layer read at the last step, linear head"
    def __init__(self, nh=32): super().__init__(); self.rnn,self.head = nn.LSTM(1, nh, batch_first=True),nn.Linear(nh, 1)
    def forward(self, x): return self.head(self.rnn(x)[0][:, -1])

class TinyAttn(nn.Module):
    "Token embedding + positions, one post-norm self-attention layer, mean pooling, linear head"
    def __init__(self, vocab=10, length=24, d=24, n_out=10):
        super().__init__()
        self.emb,self.pos = nn.Embedding(vocab, d),nn.Parameter(0.1*torch.randn(length, d))
        self.attn,self.norm = nn.MultiheadAttention(d, 2, batch_first=True),nn.LayerNorm(d)
        self.head = nn.Linear(d, n_out)
    def forward(self, x):
        h = self.emb(x) + self.pos
        h = self.norm(h + self.attn(h, h, h, need_weights=False)[0])
        return self.head(h.mean(1))

# ---- the fine-tuning task's body: a CNN with BatchNorm trained once on 4 of the 6 shapes, then fine-tuned on all 6

def pretrain(make_model, x, y, seed=0):
    "The body's weights of `make_model()` (a `Pretrained`) after 3 epochs of 1cycle (Adam 3e-3, seed `seed`) on `x`, `y`"
    set_seed(seed, reproducible=True)
    model = make_model()
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds, bs=64, shuffle=True, drop_last=True), DataLoader(ds[:256], bs=256))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=Adam)
    _quiet(learn).fit_one_cycle(3, 3e-3)
    return {k: v.clone() for k,v in model.body.state_dict().items()}

@functools.lru_cache(None)
def _shapes_body():
    "Weights of `cnn2d(bn=True)`'s body pretrained on 4000 images of shapes 0-3"
    x,y,_,_ = shapes(4000, 1, classes=4, seed=211)
    return pretrain(lambda: Pretrained(cnn2d(4, bn=True)[:-1], 288, 4), x, y),288

_old_body = suggest_tasks._pretrained_body
def _pretrained_body(kind):
    "`suggest_tasks.learner` loads a fine-tuning task's body by kind: the old kinds as before, plus 'shapes'"
    return _shapes_body() if kind == 'shapes' else _old_body(kind)
suggest_tasks._pretrained_body = _pretrained_body

# ---- the configurations, fixed before any suggestion rule was run on them

AdamW = functools.partial(OptimWrapper, opt=torch.optim.AdamW)
TorchSGDm = functools.partial(OptimWrapper, opt=functools.partial(torch.optim.SGD, momentum=0.9))

FRESH = [
    Task('spirals_mlp_plain_sgd', lambda: spirals(3000), lambda: mlp(2, 3, nh=64, depth=3), 'ce', SGD, 32, 5, (1e-2, 10), True,
         about='synthetic 3-arm spirals (3000), 3-layer MLP, SGD without momentum'),
    Task('shapes_cnn2d_nobn_rmsprop', lambda: shapes(8000, 2000), lambda: cnn2d(4), 'ce', RMSProp, 64, 4, (1e-5, 1e-1), True,
         about='synthetic 12x12 shape images (8000), 2-D CNN without BatchNorm'),
    Task('chirps_cnn1d_bn_ranger_noisy', lambda: chirps(8000), lambda: cnn1d_bn(6), 'ce', ranger, 256, 6, (1e-4, 10), True,
         about='synthetic 1-D bursts (8000), 15% label noise, 1-D CNN with BatchNorm'),
    Task('walks_lstm_mse', lambda: walks(4000), LSTMReg, 'mse', Adam, 64, 4, (1e-3, 1), True,
         about='synthetic random walks (4000), LSTM regression of their highest point'),
    Task('majority_attn_adamw', lambda: majority(8000), TinyAttn, 'ce', AdamW, 128, 2, (1e-4, 1), True,
         about='synthetic token sequences (8000), self-attention, torch AdamW'),
    Task('tags_bce_bn_lamb_bs16', lambda: tags(600), lambda: mlp(24, 10, bn=True), 'bce', Lamb, 16, 10, (1e-4, 1), True,
         about='synthetic multi-label (600), MLP with BatchNorm'),
    Task('surface_mse_bs512_1ep', lambda: surface(40000), lambda: mlp(20, 1, nh=128), 'mse', TorchSGDm, 512, 1, (1e-3, 10), True,
         about='synthetic regression (40000), MLP, torch SGD with momentum'),
    Task('finetune_shapes_sgd_bs16', lambda: shapes(480, 1000, classes=6, seed=222),
         lambda: Pretrained(cnn2d(6, bn=True)[:-1], 288, 6), 'ce', SGDm, 16, 4, (1e-4, 10), True, fine_tune='shapes',
         about='synthetic shapes, 6 classes (480), frozen CNN body pretrained on 4'),
    Task('mixture_noisy40_adam', lambda: mixture(6000), lambda: mlp(10, 5, nh=64), 'ce', Adam, 64, 3, (1e-5, 1), True,
         about='synthetic Gaussian mixture (6000), 40% label noise, MLP'),
    Task('surface_tiny_mse_tanh', lambda: surface(400, 1000, n_in=4, noise=0.5, seed=717), lambda: mlp(4, 1, nh=64, act=nn.Tanh),
         'mse', SGDm, 32, 10, (1e-4, 1), True, about='synthetic regression (400), tanh MLP'),
]
BY_NAME = {t.name: t for t in FRESH}

# ---- filling the cache (grid scores and range tests only: nothing here runs a suggestion rule)

def baseline(task):
    "What no learning scores on the validation set: the majority class, all-negative tags, or predicting the training mean"
    _,y,_,yv = task.data()
    if task.loss == 'mse': return float(((yv - y.mean())**2).mean())
    if task.loss == 'bce': return float((yv == 0).float().mean())
    return float((yv == yv.mode().values).float().mean())

def fill(cache, tasks, seeds, log=print):
    "Train every grid rate and seed, and run each seed's range test, saving the cache after each (task, seed)"
    for task in tasks:
        for seed in seeds:
            start = time.time()
            for lr in task.grid(): cache.fit(task, seed, lr)
            cache.curve(task, seed)
            cache.save()
            log(f"{task.name} seed {seed}: {len(task.grid())} rates and the range test, {time.time()-start:.0f} s")

def grid_table(cache, tasks, seeds):
    "Per task: its baseline, the best grid rate by mean over seeds, its mean and std over seeds, and the grid's two ends"
    lines = ["| task | unit | no learning | best rate | mean at best | std over seeds | lowest rate | highest rate |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tasks:
        s = np.array([[cache.fit(t, seed, lr) for lr in t.grid()] for seed in seeds])
        m = s.mean(0)
        i = int(np.argmin(m) if t.loss == 'mse' else np.argmax(m))
        opt = t.opt.func.__name__ if hasattr(t.opt, 'func') else t.opt.__name__
        lines.append(f"| {t.name}: {t.about}, {opt}, bs {t.bs}, {t.epochs} ep{', fine_tune' if t.fine_tune else ''} | "
                     f"{'val. MSE' if t.loss == 'mse' else 'accuracy'} | {baseline(t):.3f} | {t.grid()[i]:.2g} | {m[i]:.3f} | "
                     f"{s[:, i].std():.3f} | {t.grid()[0]:.0e}: {m[0]:.3f} | {t.grid()[-1]:.0e}: {m[-1]:.3f} |")
    return lines

def cli(tasks, path):
    "The command line of a fresh set's module: `--fill` its cache at `path`, `--grid` its table"
    p = argparse.ArgumentParser()
    p.add_argument('--fill', action='store_true', help='train the grids and run the range tests into the cache')
    p.add_argument('--grid', action='store_true', help='print the table of grid scores from the cache')
    p.add_argument('--seeds', type=int, nargs='+', default=SEEDS)
    p.add_argument('--tasks', nargs='+', help=f'task names (default: all {len(tasks)})')
    a = p.parse_args()
    torch.set_num_threads(1)
    from suggest import Cache
    cache = Cache(path)
    by_name = {t.name: t for t in tasks}
    tasks = [by_name[n] for n in a.tasks] if a.tasks else tasks
    if a.fill: fill(cache, tasks, a.seeds)
    if a.grid: print("\n".join(grid_table(cache, tasks, a.seeds)))

if __name__ == '__main__': cli(FRESH, CACHE)
