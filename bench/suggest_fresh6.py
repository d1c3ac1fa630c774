"""A sixth fresh held-out set for `bench/suggest.py`: 10 task configurations that no suggestion rule was tuned or looked at on.

The first five fresh sets (`bench/suggest_fresh.py` to `suggest_fresh5.py`) have been looked at, so they are no longer
held out. These 10 were defined, and their grids fixed, from grid scores alone, and committed before any suggestion rule
was run on them. They differ from the 66 earlier tasks (and from each other) in model family (user and item embeddings
with biases, an LSTM, an MLP with BatchNorm, a 1-D CNN without normalization, a 2-D CNN with dropout, self-attention, a
wide MLP with BatchNorm, a fine-tuned LSTM body, an MLP with dropout, a residual 1-D CNN without normalization), loss,
data size, label noise, batch size, optimizer (Adam with weight decay, RMSProp, torch Adam with AMSGrad, Lamb, SGD with
momentum and weight decay, QHAdam, Larc, SGD without momentum, RAdam), budget and fine-tuning; all data is generated here
with its own seeds, 5101 and up (no download, no dataset or generator configuration of the earlier tasks). Every
validation set has 1000 samples or more.

    timeout 3600 .venv/bin/python bench/suggest_fresh6.py --fill [--seeds S ...] [--tasks NAME ...]   # grids, curves
    .venv/bin/python bench/suggest_fresh6.py --grid                                                   # grid table

`--fill` writes bench/suggest_fresh6_cache.json (`suggest.Cache`: every grid rate and seed, and each seed's range test).
"""
import functools, math, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
import suggest_tasks
from suggest_tasks import Task, Pretrained, Attn, _split, _noisy, mlp as drop_mlp
from suggest_fresh import cli, pretrain
from suggest_fresh2 import _gen, mlp, conv1d
from fastai.optimizer import Adam, SGD, RMSProp, QHAdam, RAdam, Larc, Lamb, OptimWrapper

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_fresh6_cache.json')

# ---- data: (x_train, y_train, x_valid, y_valid), fixed whatever the training seed

def _std_target(xt, yt, xv, yv):
    "A regression split with its target standardized on the training part, as a column"
    m,s = yt.mean(),yt.std()
    return xt,((yt-m)/s)[:, None],xv,((yv-m)/s)[:, None]

@functools.lru_cache(None)
def ratings(n_train, n_valid=2000, users=400, items=300, rank=5):
    "Ratings of (user, item) pairs: a rank-5 dot product plus user and item biases plus noise, standardized"
    g = _gen(5101); n = n_train + n_valid
    u,i = torch.randint(0, users, (n,), generator=g),torch.randint(0, items, (n,), generator=g)
    pu,pi = torch.randn(users, rank, generator=g),torch.randn(items, rank, generator=g)
    bu,bi = torch.randn(users, generator=g),torch.randn(items, generator=g)
    r = (pu[u]*pi[i]).sum(1)/math.sqrt(rank) + 0.7*bu[u] + 0.7*bi[i] + 0.5*torch.randn(n, generator=g)
    return _std_target(*_split(torch.stack([u, i], 1), r, n_valid, seed=5101))

@functools.lru_cache(None)
def decay(n_train, n_valid=1000, length=30):
    "Noisy damped oscillations of random frequency and phase; regress the (standardized) log of their damping rate"
    g = _gen(5111); n = n_train + n_valid
    rate = torch.exp(math.log(0.02) + math.log(15)*torch.rand(n, generator=g))
    freq,phase = 0.2 + 0.8*torch.rand(n, generator=g),2*math.pi*torch.rand(n, generator=g)
    t = torch.arange(length).float()
    x = torch.exp(-rate[:, None]*t)*torch.cos(freq[:, None]*t + phase[:, None]) + 0.15*torch.randn(n, length, generator=g)
    y = rate.log()
    return _split(x[..., None], ((y - y.mean())/y.std())[:, None], n_valid, seed=5111)

@functools.lru_cache(None)
def bumps(n_train, n_valid=1000, n_in=5, k=4):
    "A sum of 4 Gaussian bumps of random signs over 5 inputs, plus noise; standardized target"
    g = _gen(5121); n = n_train + n_valid
    x = torch.randn(n, n_in, generator=g)
    c,w = torch.randn(k, n_in, generator=g),torch.randn(k, generator=g).sign()*(1 + torch.rand(k, generator=g))
    y = (w*torch.exp(-((x[:, None] - c)**2).sum(-1)/4)).sum(1) + 0.1*torch.randn(n, generator=g)
    return _std_target(*_split(x, y, n_valid, seed=5121))

@functools.lru_cache(None)
def chords(n_train, n_valid=1000, length=48, notes=8, noise=0.6):
    "Signals summing sinusoids of 8 frequencies, each present with probability 0.35 (random phase and amplitude); multi-label"
    g = _gen(5131); n = n_train + n_valid
    y = (torch.rand(n, notes, generator=g) < 0.35).float()
    freq = torch.linspace(0.25, 2.0, notes)
    amp,phase = 0.5 + torch.rand(n, notes, generator=g),2*math.pi*torch.rand(n, notes, generator=g)
    t = torch.arange(length).float()
    x = (y[..., None]*amp[..., None]*torch.sin(freq[:, None]*t + phase[..., None])).sum(1) + noise*torch.randn(n, length, generator=g)
    return _split(x, y, n_valid, seed=5131)

SEGMENTS = [(1, 1, 1, 0, 1, 1, 1), (0, 0, 1, 0, 0, 1, 0), (1, 0, 1, 1, 1, 0, 1), (1, 0, 1, 1, 0, 1, 1), (0, 1, 1, 1, 0, 1, 0),
            (1, 1, 0, 1, 0, 1, 1), (1, 1, 0, 1, 1, 1, 1), (1, 0, 1, 0, 0, 1, 0), (1, 1, 1, 1, 1, 1, 1), (1, 1, 1, 1, 0, 1, 1)]

def _digit(d):
    "A 9x5 seven-segment glyph of digit `d` (segments: top, top left, top right, middle, bottom left, bottom right, bottom)"
    im = torch.zeros(9, 5)
    for s,(r,c) in zip(SEGMENTS[d], [(0, None), (1, 0), (1, 4), (4, None), (5, 0), (5, 4), (8, None)]):
        if not s: continue
        if c is None: im[r, 1:4] = 1
        else: im[r:r+3, c] = 1
    return im

@functools.lru_cache(None)
def sevenseg(n_train, n_valid=1000, side=14, noise=0.35):
    "14x14 images of seven-segment digits at random places, each segment pixel kept with probability 0.8, in noise"
    g = _gen(5141); n = n_train + n_valid
    y = torch.randint(0, 10, (n,), generator=g)
    glyphs = torch.stack([_digit(d) for d in range(10)])
    x = noise*torch.randn(n, 1, side, side, generator=g)
    pos = torch.stack([torch.randint(0, side-8, (n,), generator=g), torch.randint(0, side-4, (n,), generator=g)], 1)
    keep = (torch.rand(n, 9, 5, generator=g) < 0.8).float()
    for j in range(n):
        r,c = pos[j].tolist()
        x[j, 0, r:r+9, c:c+5] += glyphs[y[j]]*keep[j]
    return _split(x, y, n_valid, seed=5141)

@functools.lru_cache(None)
def distinct(n_train, n_valid=2000, length=8, vocab=8, flip=0.1):
    "Sequences of 8 tokens out of 8: class = how many distinct tokens (at most 4, 5, or 6 and more); training labels noisy"
    g = _gen(5151); n = n_train + n_valid
    x = torch.randint(0, vocab, (n, length), generator=g)
    k = torch.tensor([len(set(r)) for r in x.tolist()])
    xt,yt,xv,yv = _split(x, (k >= 5).long() + (k >= 6).long(), n_valid, seed=5151)
    return xt,_noisy(yt, flip, 3, seed=5152),xv,yv

@functools.lru_cache(None)
def clusters(n_train, n_valid=2000, n_in=8, k=40, classes=4):
    "A mixture of 40 Gaussian clusters in 8-D, each cluster given one of 4 classes at random"
    g = _gen(5161); n = n_train + n_valid
    centres,label = 2.2*torch.randn(k, n_in, generator=g),torch.randint(0, classes, (k,), generator=g)
    c = torch.randint(0, k, (n,), generator=g)
    return _split(centres[c] + torch.randn(n, n_in, generator=g), label[c], n_valid, seed=5161)

@functools.lru_cache(None)
def gestures(n_train, n_valid, first=0, classes=6, seed=5171, length=24):
    "2-channel sequences tracing one of 10 fixed smooth curves (classes `first` on), randomly scaled, shifted in time, in noise"
    g = _gen(seed); n = n_train + n_valid
    coef = torch.randn(10, 2, 3, generator=_gen(5170))          # the same 10 curves for every call: 3 harmonics per channel
    y = torch.randint(0, classes, (n,), generator=g)
    t = (torch.arange(length).float()/length)[None] + 0.15*torch.rand(n, 1, generator=g)
    h = torch.arange(1, 4).float()
    curve = (coef[first + y][..., None]*torch.sin(2*math.pi*h[None, None, :, None]*t[:, None, None])).sum(2)
    x = (0.7 + 0.6*torch.rand(n, 1, 1, generator=g))*curve + 1.2*torch.randn(n, 2, length, generator=g)
    return _split(x.transpose(1, 2), y, n_valid, seed=seed)

@functools.lru_cache(None)
def yinyang(n_train, n_valid=1000, flip=0.1):
    "The yin-yang disk (yin, yang, and the two small dots as a third class); training labels noisy"
    g = _gen(5181); n = n_train + n_valid
    r,a = torch.rand(n, generator=g).sqrt(),2*math.pi*torch.rand(n, generator=g)
    x = torch.stack([r*a.cos(), r*a.sin()], 1)
    up,down = ((x - torch.tensor([0., 0.5]))**2).sum(1).sqrt(),((x + torch.tensor([0., 0.5]))**2).sum(1).sqrt()
    yin = torch.where(up < 0.5, torch.ones(n), torch.where(down < 0.5, torch.zeros(n), (x[:, 0] > 0).float())).long()
    y = torch.where((up < 0.18) | (down < 0.18), torch.full_like(yin, 2), yin)
    xt,yt,xv,yv = _split(x, y, n_valid, seed=5181)
    return xt,_noisy(yt, flip, 3, seed=5182),xv,yv

@functools.lru_cache(None)
def rhythm(n_train, n_valid=1500, length=64, periods=(4, 6, 8, 11, 14)):
    "1-D signals of pulses at one of 5 periods, with timing jitter, missing pulses and noise; class = the period"
    g = _gen(5191); n = n_train + n_valid
    y = torch.randint(0, len(periods), (n,), generator=g)
    x = 0.4*torch.randn(n, length, generator=g)
    for j in range(n):
        p = periods[y[j]]
        for s in range(int(torch.randint(0, p, (1,), generator=g)), length, p):
            s = min(length-1, max(0, s + int(torch.randint(-1, 2, (1,), generator=g))))
            if bool(torch.rand(1, generator=g) < 0.8): x[j, s] += 1.0
    return _split(x, y, n_valid, seed=5191)

# ---- models

class DotBias(nn.Module):
    "User and item embeddings: their dot product plus a bias for each (collaborative filtering)"
    def __init__(self, users=400, items=300, d=16):
        super().__init__()
        self.u,self.i,self.bu,self.bi = nn.Embedding(users, d),nn.Embedding(items, d),nn.Embedding(users, 1),nn.Embedding(items, 1)
        for e in (self.u, self.i, self.bu, self.bi): nn.init.normal_(e.weight, std=0.01)   # small, as fastai's collab models start
    def forward(self, x): return (self.u(x[:, 0])*self.i(x[:, 1])).sum(1, keepdim=True) + self.bu(x[:, 0]) + self.bi(x[:, 1])

class LSTMBody(nn.Module):
    "One LSTM layer read at the last step: the regression's trunk, and the fine-tuning task's body"
    def __init__(self, n_in=1, nh=32): super().__init__(); self.rnn = nn.LSTM(n_in, nh, batch_first=True)
    def forward(self, x): return self.rnn(x)[0][:, -1]

def cnn_drop(n_out=10, nf=16, drop=0.3):
    "Two 3x3 conv blocks without normalization, max pooling, dropout before a linear head"
    return nn.Sequential(nn.Conv2d(1, nf, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(nf, 2*nf, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(drop), nn.Linear(2*nf*9, n_out))

class ResConv1d(nn.Module):
    "A 1-D conv stem, two dilated residual blocks (conv-ReLU-conv, no normalization), global max pooling, linear head"
    def __init__(self, n_out=5, nf=16):
        super().__init__()
        self.stem = nn.Conv1d(1, nf, 5, padding=2)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Conv1d(nf, nf, 5, padding=2*d, dilation=d), nn.ReLU(),
                                                  nn.Conv1d(nf, nf, 5, padding=2*d, dilation=d)) for d in (2, 4))
        self.head = nn.Linear(nf, n_out)
    def forward(self, x):
        h = self.stem(x[:, None])
        for b in self.blocks: h = h + b(h)
        return self.head(torch.relu(h).amax(2))

# ---- the fine-tuning task's body: an LSTM trained once on gestures 0-5, fine-tuned on gestures 4-9

@functools.lru_cache(None)
def _gestures_body():
    """Weights of `LSTMBody` pretrained (`suggest_fresh.pretrain`) on 4000 sequences of gestures 0-5.
    Its seed is none of the tasks' 0-4: under the same seed, the new head would start as the pretraining head did."""
    x,y,_,_ = gestures(4000, 1, seed=5172)
    return pretrain(lambda: Pretrained(LSTMBody(2), 32, 6), x, y, seed=5199),32

_prev_body = suggest_tasks._pretrained_body   # already extended by the earlier fresh sets
def _pretrained_body(kind):
    "`suggest_tasks.learner` loads a fine-tuning task's body by kind: the earlier kinds as before, plus 'gestures'"
    return _gestures_body() if kind == 'gestures' else _prev_body(kind)
suggest_tasks._pretrained_body = _pretrained_body

# ---- the configurations, fixed before any suggestion rule was run on them

AdamWD = functools.partial(Adam, wd=0.1)
AMSGrad = functools.partial(OptimWrapper, opt=functools.partial(torch.optim.Adam, amsgrad=True))
SGDwd = functools.partial(SGD, mom=0.9, wd=5e-4)

FRESH6 = [
    Task('ratings_embdot_mse_adam_wd', lambda: ratings(20000), DotBias, 'mse', AdamWD, 256, 4, (1e-4, 10), True,
         about='synthetic user-item ratings (20000), embedding dot product with biases, weight decay 0.1'),
    Task('decay_lstm_mse_rmsprop', lambda: decay(3000), lambda: Pretrained(LSTMBody(), 32, 1), 'mse', RMSProp, 32, 5, (1e-5, 1),
         True, about='synthetic damped oscillations (3000), LSTM regression of the damping rate'),
    Task('bumps_bn_mse_amsgrad_bs16', lambda: bumps(800), lambda: mlp(5, 1, bn=True), 'mse', AMSGrad, 16, 8, (1e-5, 1), True,
         about='synthetic sum of Gaussian bumps (800), MLP with BatchNorm, torch Adam with AMSGrad'),
    Task('chords_cnn1d_nobn_bce_lamb', lambda: chords(4000), lambda: conv1d(8, bn=False), 'bce', Lamb, 128, 5, (1e-4, 10), True,
         about='synthetic chords of 8 notes (4000), multi-label, 1-D CNN without BatchNorm'),
    Task('sevenseg_cnn_dropout_sgd_wd', lambda: sevenseg(5000), cnn_drop, 'ce', SGDwd, 64, 3, (1e-3, 10), True,
         about='synthetic seven-segment digit images (5000), CNN with dropout, momentum 0.9, weight decay 5e-4'),
    Task('distinct_attn_qhadam_noisy', lambda: distinct(3000), lambda: Attn(8, 8, 32, 3), 'ce', QHAdam, 32, 4, (1e-5, 1), True,
         about='synthetic token sequences, count of distinct tokens (3000), 10% label noise, self-attention'),
    Task('clusters_bn_larc_bs512_1ep', lambda: clusters(30000), lambda: mlp(8, 4, nh=128, bn=True), 'ce', Larc, 512, 1,
         (1e-3, 100), True, about='synthetic mixture of 40 clusters in 4 classes (30000), MLP with BatchNorm'),
    Task('finetune_gestures_lstm_adam', lambda: gestures(500, 1000, first=4, seed=5173), lambda: Pretrained(LSTMBody(2), 32, 6),
         'ce', Adam, 32, 2, (1e-4, 1e3), True, fine_tune='gestures',
         about='synthetic 2-channel gestures, 6 classes (500), frozen LSTM body pretrained on 6 others, 2 of them shared'),
    Task('yinyang_dropout_sgd_bs16_noisy', lambda: yinyang(500), lambda: drop_mlp(2, 3, drop=0.1), 'ce', SGD, 16, 10, (1e-3, 100),
         True, about='synthetic yin-yang disk, 3 classes (500), 10% label noise, MLP with dropout 0.1, SGD without momentum'),
    Task('rhythm_rescnn1d_radam', lambda: rhythm(6000), ResConv1d, 'ce', RAdam, 128, 5, (1e-4, 1), True,
         about='synthetic pulse trains, 5 periods (6000), residual 1-D CNN without normalization'),
]

if __name__ == '__main__': cli(FRESH6, CACHE)
