"""A second fresh held-out set for `bench/suggest.py`: 10 task configurations that no suggestion rule was tuned or looked at on.

The first fresh set (`bench/suggest_fresh.py`) has been looked at, so it is no longer held out. These 10 were defined,
and their grids fixed, from grid scores alone, and committed before any suggestion rule was run on them. They differ
from the 26 earlier tasks (and from each other) in model family, loss, data size, label noise, batch size, optimizer,
budget and fine-tuning; all data is generated here with its own seeds (no download, no dataset of the earlier tasks).
Every validation set has 1000 samples or more, so one seed's score is not noise.

    timeout 3600 .venv/bin/python bench/suggest_fresh2.py --fill [--seeds S ...] [--tasks NAME ...]   # grids, curves
    .venv/bin/python bench/suggest_fresh2.py --grid                                                   # grid table

`--fill` writes bench/suggest_fresh2_cache.json (`suggest.Cache`: every grid rate and seed, and each seed's range test).
"""
import functools, math, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
import suggest_tasks, suggest_fresh
from suggest_tasks import Task, Pretrained, _split, _standardize, _noisy, SGDm
from suggest_fresh import cli, pretrain
from fastai.optimizer import Adam, RMSProp, Lamb, ranger, QHAdam, RAdam, OptimWrapper

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_fresh2_cache.json')

def _gen(seed): return torch.Generator().manual_seed(seed)

# ---- data: (x_train, y_train, x_valid, y_valid), fixed whatever the training seed

@functools.lru_cache(None)
def shells(n_train, n_valid=1000, n_in=8, classes=4):
    "Points in 8-D under a random linear map; the class is the band of their (jittered) radius before the map"
    g = _gen(1101); n = n_train + n_valid
    d = torch.randn(n, n_in, generator=g); d = d/d.norm(dim=1, keepdim=True)
    r = 0.5 + 2*torch.rand(n, generator=g)
    x = (r + 0.08*torch.randn(n, generator=g))[:, None]*d @ (torch.eye(n_in) + 0.4*torch.randn(n_in, n_in, generator=g))
    y = ((r - 0.5)/2*classes).long().clamp(max=classes-1)
    xt,yt,xv,yv = _split(x, y, n_valid, seed=1101)
    xt,xv = _standardize(xt, xv)
    return xt,yt,xv,yv

SEGMENTS = {0: 'abcdef', 1: 'bc', 2: 'abdeg', 3: 'abcdg', 4: 'bcfg', 5: 'acdfg', 6: 'acdefg', 7: 'abc', 8: 'abcdefg', 9: 'abcdfg'}
def _glyph(k):
    "9x5 seven-segment stencil of digit `k`"
    s = torch.zeros(9, 5)
    for c in SEGMENTS[k]:
        if c == 'a': s[0] = 1
        elif c == 'g': s[4] = 1
        elif c == 'd': s[8] = 1
        elif c == 'f': s[:5, 0] = 1
        elif c == 'e': s[4:, 0] = 1
        elif c == 'b': s[:5, 4] = 1
        else: s[4:, 4] = 1
    return s

@functools.lru_cache(None)
def segments(n_train, n_valid, noise=0.5, seed=1201):
    "16x12 images of one seven-segment digit at a random place, random contrast, a random segment faded, in noise"
    g = _gen(seed); n = n_train + n_valid
    y = torch.randint(0, 10, (n,), generator=g)
    pos = torch.stack([torch.randint(0, 8, (n,), generator=g), torch.randint(0, 8, (n,), generator=g)], 1)
    amp = 0.6 + 0.8*torch.rand(n, generator=g)
    x = noise*torch.randn(n, 1, 16, 12, generator=g)
    stencils = torch.stack([_glyph(k) for k in range(10)])
    for i in range(n):
        r,c = pos[i].tolist()
        x[i, 0, r:r+9, c:c+5] += amp[i]*stencils[y[i]]
    return _split(x, y, n_valid, seed=seed)

@functools.lru_cache(None)
def gratings(n_train, n_valid=1000, side=14, flip=0.25):
    "Images of a sinusoidal grating in a Gaussian window; class = orientation (4, 45 degrees apart); training labels noisy"
    g = _gen(1301); n = n_train + n_valid
    y = torch.randint(0, 4, (n,), generator=g)
    theta = math.pi/4*y + 0.25*(torch.rand(n, generator=g) - 0.5)
    freq,phase = 0.15 + 0.15*torch.rand(n, generator=g),2*math.pi*torch.rand(n, generator=g)
    centre = 4 + 6*torch.rand(n, 2, generator=g)
    r,c = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing='ij')
    u = c[None]*theta.cos()[:, None, None] + r[None]*theta.sin()[:, None, None]
    win = torch.exp(-((r[None]-centre[:, 0, None, None])**2 + (c[None]-centre[:, 1, None, None])**2)/18)
    x = win*torch.sin(2*math.pi*freq[:, None, None]*u + phase[:, None, None]) + 0.7*torch.randn(n, side, side, generator=g)
    xt,yt,xv,yv = _split(x[:, None], y, n_valid, seed=1301)
    return xt,_noisy(yt, flip, 4, seed=1302),xv,yv

@functools.lru_cache(None)
def events(n_train, n_valid=1000, length=24, types=6):
    "Sequences of one-hot events (mostly blanks) in noise; tag j when event type j occurs at least twice"
    g = _gen(1401); n = n_train + n_valid
    tok = torch.where(torch.rand(n, length, generator=g) < 0.25, torch.randint(1, types+1, (n, length), generator=g), 0)
    x = nn.functional.one_hot(tok, types+1).float() + 0.3*torch.randn(n, length, types+1, generator=g)
    y = (torch.stack([(tok == j).sum(1) for j in range(1, types+1)], 1) >= 2).float()
    return _split(x, y, n_valid, seed=1401)

@functools.lru_cache(None)
def keycount(n_train, n_valid=2000, length=16, vocab=8, noise=0.6):
    "Token sequences; regress how many of the other tokens equal the first one, plus noise, standardized"
    g = _gen(1501); n = n_train + n_valid
    x = torch.randint(0, vocab, (n, length), generator=g)
    y = (x[:, 1:] == x[:, :1]).sum(1).float() + noise*torch.randn(n, generator=g)
    return _split(x, ((y-y.mean())/y.std())[:, None], n_valid, seed=1501)

@functools.lru_cache(None)
def wiggle(n_train, n_valid=1000, noise=0.8):
    "Regression on 3 inputs: a sine, a product and a bump, plus noise, standardized"
    g = _gen(1601); n = n_train + n_valid
    x = torch.randn(n, 3, generator=g)
    y = torch.sin(2*x[:, 0]) + x[:, 1]*x[:, 2] + torch.exp(-x[:, 2]**2) + noise*torch.randn(n, generator=g)
    xt,yt,xv,yv = _split(x, y[:, None], n_valid, seed=1601)
    m,s = yt.mean(),yt.std()
    return xt,(yt-m)/s,xv,(yv-m)/s

@functools.lru_cache(None)
def sectors(n_train, n_valid=2000, n_in=12, flip=0.05):
    "12-D points; class = the signs of 3 random quadratic-plus-linear scores (8 classes); some training labels flipped"
    g = _gen(1701); n = n_train + n_valid
    x = torch.randn(n, n_in, generator=g)
    w,q = torch.randn(n_in, 3, generator=g)/math.sqrt(n_in),torch.randn(n_in, 3, generator=g)/math.sqrt(n_in)
    s = x@w + 0.5*(x@q)**2 - 0.5
    y = ((s > 0).long()*torch.tensor([1, 2, 4])).sum(1)
    xt,yt,xv,yv = _split(x, y, n_valid, seed=1701)
    return xt,_noisy(yt, flip, 8, seed=1702),xv,yv

WAVES = 7
@functools.lru_cache(None)
def waveforms(n_train, n_valid, classes=WAVES, seed=1801, length=48):
    "1-D signals of one wave type (sine, square, sawtooth, triangle, rising chirp, damped sine, pulses), random period, in noise"
    g = _gen(seed); n = n_train + n_valid
    y = torch.randint(0, classes, (n,), generator=g)
    t = torch.arange(length).float()[None]
    period,phase = 6 + 10*torch.rand(n, 1, generator=g),torch.rand(n, 1, generator=g)
    u = (t/period + phase) % 1
    kinds = torch.stack([torch.sin(2*math.pi*u), torch.sign(torch.sin(2*math.pi*u)), 2*u - 1, 1 - 4*(u - 0.5).abs(),
                         torch.sin(2*math.pi*(t/period)*(0.5 + t/length) + 2*math.pi*phase),
                         torch.exp(-t/16)*torch.sin(2*math.pi*u)*2, (u < 0.2).float()*2 - 0.4], 1)
    amp = 0.7 + 0.6*torch.rand(n, 1, generator=g)
    x = amp*kinds[torch.arange(n), y] + 0.45*torch.randn(n, length, generator=g)
    return _split(x, y, n_valid, seed=seed)

@functools.lru_cache(None)
def tones(n_train, n_valid=1500, length=64):
    "Regression on 1-D signals: the (log) frequency of a windowed tone in noise, plus target noise, standardized"
    g = _gen(1901); n = n_train + n_valid
    f = 0.03 + 0.2*torch.rand(n, generator=g)
    t = torch.arange(length).float()[None]
    centre,width = 20 + 24*torch.rand(n, 1, generator=g),8 + 8*torch.rand(n, 1, generator=g)
    x = (torch.exp(-((t-centre)/width)**2)*torch.sin(2*math.pi*f[:, None]*t + 2*math.pi*torch.rand(n, 1, generator=g))
         + 0.5*torch.randn(n, length, generator=g))
    y = f.log() + 0.1*torch.randn(n, generator=g)
    return _split(x, ((y-y.mean())/y.std())[:, None], n_valid, seed=1901)

@functools.lru_cache(None)
def checker(n_train, n_valid=1000, flip=0.2):
    "2-D points on a 5x5 checkerboard of 4 classes ((i + 2j) mod 4 of their cell); training labels noisy"
    g = _gen(2001); n = n_train + n_valid
    x = 5*torch.rand(n, 2, generator=g)
    y = (x[:, 0].floor() + 2*x[:, 1].floor()).long() % 4
    xt,yt,xv,yv = _split(x - 2.5, y, n_valid, seed=2001)
    return xt,_noisy(yt, flip, 4, seed=2002),xv,yv

# ---- models

def mlp(n_in, n_out, nh=64, depth=2, bn=False, act=nn.ReLU):
    layers = []
    for i in range(depth): layers += [nn.Linear(n_in if i == 0 else nh, nh)] + ([nn.BatchNorm1d(nh)] if bn else []) + [act()]
    return nn.Sequential(*layers, nn.Linear(nh, n_out))

def conv2d(n_out, nf=16, bn=False, pool=1):
    "Three 3x3 conv blocks (the last two with stride 2), average pooling to `pool`x`pool`, linear head"
    def block(ni, no, stride):
        return [nn.Conv2d(ni, no, 3, stride=stride, padding=1, bias=not bn)] + ([nn.BatchNorm2d(no)] if bn else []) + [nn.ReLU()]
    return nn.Sequential(*block(1, nf, 1), *block(nf, 2*nf, 2), *block(2*nf, 2*nf, 2), nn.AdaptiveAvgPool2d(pool),
                         nn.Flatten(), nn.Linear(2*nf*pool*pool, n_out))

def conv1d(n_out, nf=16, bn=True, length=48):
    "Three 1-D conv blocks (with or without BatchNorm), global average pooling, linear head"
    def block(ni, ks, stride):
        return [nn.Conv1d(ni, nf, ks, stride=stride, padding=ks//2, bias=not bn)] + ([nn.BatchNorm1d(nf)] if bn else []) + [nn.ReLU()]
    return nn.Sequential(nn.Unflatten(1, (1, length)), *block(1, 7, 1), *block(nf, 5, 2), *block(nf, 3, 2),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(nf, n_out))

class GRUTagger(nn.Module):
    "One GRU layer read at the last step, one logit per tag"
    def __init__(self, n_in=7, n_out=6, nh=32): super().__init__(); self.rnn,self.head = nn.GRU(n_in, nh, batch_first=True),nn.Linear(nh, n_out)
    def forward(self, x): return self.head(self.rnn(x)[0][:, -1])

class AttnReg(suggest_tasks.Attn):
    "`suggest_tasks.Attn` (vocabulary 8, 16 positions) with one output, read at the first token"
    def __init__(self, vocab=8, length=16, d=32, n_out=1): super().__init__(vocab, length, d, n_out)
    def forward(self, x): return self.head(self.block(x)[:, 0])

# ---- the fine-tuning task's body: a 1-D CNN with BatchNorm trained once on 4 of the 7 wave types, then fine-tuned on all 7

@functools.lru_cache(None)
def _waves_body():
    "Weights of `conv1d(bn=True)`'s body pretrained (`suggest_fresh.pretrain`) on 4000 signals of wave types 0-3"
    x,y,_,_ = waveforms(4000, 1, classes=4, seed=1811)
    return pretrain(lambda: Pretrained(conv1d(4)[:-1], 16, 4), x, y),16

_prev_body = suggest_tasks._pretrained_body   # already extended by suggest_fresh with 'shapes'
def _pretrained_body(kind):
    "`suggest_tasks.learner` loads a fine-tuning task's body by kind: the earlier kinds as before, plus 'waves'"
    return _waves_body() if kind == 'waves' else _prev_body(kind)
suggest_tasks._pretrained_body = _pretrained_body

# ---- the configurations, fixed before any suggestion rule was run on them

NAdam = functools.partial(OptimWrapper, opt=torch.optim.NAdam)
Adamax = functools.partial(OptimWrapper, opt=torch.optim.Adamax)

FRESH2 = [
    Task('shells_mlp_qhadam', lambda: shells(5000), lambda: mlp(8, 4), 'ce', QHAdam, 64, 4, (1e-5, 1), True,
         about='synthetic 8-D radius bands (5000), MLP'),
    Task('segments_cnn2d_bn_sgd', lambda: segments(8000, 2000), lambda: conv2d(10, bn=True, pool=3), 'ce', SGDm, 128, 3,
         (1e-3, 10), True, about='synthetic seven-segment digit images (8000), 2-D CNN with BatchNorm'),
    Task('gratings_cnn2d_nobn_radam_noisy', lambda: gratings(3000), lambda: conv2d(4), 'ce', RAdam, 32, 5, (1e-4, 1), True,
         about='synthetic grating images (3000), 25% label noise, 2-D CNN without BatchNorm'),
    Task('events_gru_bce_rmsprop', lambda: events(3000), GRUTagger, 'bce', RMSProp, 32, 4, (1e-5, 1), True,
         about='synthetic event sequences (3000), multi-label, GRU'),
    Task('keycount_attn_mse_ranger', lambda: keycount(8000), AttnReg, 'mse', ranger, 128, 3, (1e-4, 1), True,
         about='synthetic token sequences (8000), self-attention regression of a count'),
    Task('wiggle_tiny_mse_silu_bs16', lambda: wiggle(300), lambda: mlp(3, 1, act=nn.SiLU), 'mse', Adam, 16, 10, (1e-4, 1), True,
         about='synthetic regression (300), SiLU MLP'),
    Task('sectors_bn_nadam_bs512_1ep', lambda: sectors(30000), lambda: mlp(12, 8, nh=128, bn=True), 'ce', NAdam, 512, 1,
         (1e-4, 10), True, about='synthetic 8-class sectors (30000), 5% label noise, MLP with BatchNorm, torch NAdam'),
    Task('finetune_waves_lamb_bs16', lambda: waveforms(700, 1000), lambda: Pretrained(conv1d(WAVES)[:-1], 16, WAVES), 'ce', Lamb,
         16, 4, (1e-4, 10), True, fine_tune='waves', about='synthetic wave types, 7 classes (700), frozen 1-D CNN body pretrained on 4'),
    Task('tones_cnn1d_nobn_mse_adamax', lambda: tones(6000), lambda: conv1d(1, bn=False, length=64), 'mse', Adamax, 256, 6,
         (1e-4, 1), True, about='synthetic tones (6000), 1-D CNN without BatchNorm regressing their frequency, torch Adamax'),
    Task('checker_noisy20_adam_bs256', lambda: checker(8000), lambda: mlp(2, 4, depth=3), 'ce', Adam, 256, 8, (1e-4, 1), True,
         about='synthetic 5x5 checkerboard, 4 classes (8000), 20% label noise, 3-layer MLP'),
]
BY_NAME = {t.name: t for t in FRESH2}

if __name__ == '__main__': cli(FRESH2, CACHE)
