"""A third fresh held-out set for `bench/suggest.py`: 10 task configurations that no suggestion rule was tuned or looked at on.

The first two fresh sets (`bench/suggest_fresh.py`, `bench/suggest_fresh2.py`) have been looked at, so they are no longer
held out. These 10 were defined, and their grids fixed, from grid scores alone, and committed before any suggestion rule
was run on them. They differ from the 36 earlier tasks (and from each other) in model family, loss, data size, label
noise, batch size, optimizer (weight decay included), budget and fine-tuning; all data is generated here with its own
seeds (no download, no dataset of the earlier tasks). Every validation set has 1000 samples or more, so one seed's score
is not noise.

    timeout 3600 .venv/bin/python bench/suggest_fresh3.py --fill [--seeds S ...] [--tasks NAME ...]   # grids, curves
    .venv/bin/python bench/suggest_fresh3.py --grid                                                   # grid table

`--fill` writes bench/suggest_fresh3_cache.json (`suggest.Cache`: every grid rate and seed, and each seed's range test).
"""
import functools, math, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
import suggest_tasks
from suggest_tasks import Task, Pretrained, _split, _standardize, _noisy
from suggest_fresh import cli, pretrain
from suggest_fresh2 import _gen, mlp, conv2d, AttnReg
from fastai.optimizer import Adam, SGD, Lamb, ranger, QHAdam, RAdam, OptimWrapper
from fastai.tabular.model import TabularModel

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_fresh3_cache.json')

# ---- data: (x_train, y_train, x_valid, y_valid), fixed whatever the training seed

def _tensors(x, y, n_valid, seed, std_y=False):
    "scikit-learn arrays split, inputs standardized, and a regression target standardized on the training part"
    xt,yt,xv,yv = _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32 if std_y else torch.long),
                         n_valid, seed=seed)
    xt,xv = _standardize(xt, xv)
    if not std_y: return xt,yt,xv,yv
    m,s = yt.mean(),yt.std()
    return xt,((yt-m)/s)[:, None],xv,((yv-m)/s)[:, None]

@functools.lru_cache(None)
def rings(n_train, n_valid=1000, flip=0.1):
    "scikit-learn's two noisy concentric circles; a fraction `flip` of the training labels replaced at random"
    from sklearn.datasets import make_circles
    x,y = make_circles(n_train + n_valid, noise=0.12, factor=0.6, random_state=2101)
    xt,yt,xv,yv = _tensors(x, y, n_valid, 2101)
    return xt,_noisy(yt, flip, 2, seed=2102),xv,yv

@functools.lru_cache(None)
def friedman2(n_train, n_valid=1000):
    "scikit-learn's Friedman #2 regression (impedance of a circuit), with noise, standardized"
    from sklearn.datasets import make_friedman2
    return _tensors(*make_friedman2(n_train + n_valid, noise=150, random_state=2111), n_valid, 2111, std_y=True)

@functools.lru_cache(None)
def friedman3(n_train, n_valid=1000):
    "scikit-learn's Friedman #3 regression (phase of a circuit), with noise, standardized"
    from sklearn.datasets import make_friedman3
    return _tensors(*make_friedman3(n_train + n_valid, noise=0.1, random_state=2121), n_valid, 2121, std_y=True)

@functools.lru_cache(None)
def bags(n_train, n_valid=1000, vocab=200, topics=8, length=16):
    "Bags of tokens: each document mixes 1 to 3 topics' keywords (15 each) with background tokens; tag = topic present"
    g = _gen(2131); n = n_train + n_valid
    keywords = torch.stack([torch.randperm(vocab, generator=g)[:15] for _ in range(topics)])
    k = torch.randint(1, 4, (n,), generator=g)
    present = torch.rand(n, topics, generator=g).argsort(1) < k[:, None]
    pick = torch.multinomial(present.float(), length, replacement=True, generator=g)      # a present topic per token
    topical = keywords[pick, torch.randint(0, 15, (n, length), generator=g)]
    x = torch.where(torch.rand(n, length, generator=g) < 0.35, topical, torch.randint(0, vocab, (n, length), generator=g))
    return _split(x, present.float(), n_valid, seed=2131)

CARDS = (6, 12, 30, 50)
@functools.lru_cache(None)
def tabular(n_train, n_valid=2000, n_cont=6, classes=3):
    "4 categorical columns and 6 continuous ones; the class is drawn from softmax(category effects + a nonlinear score)"
    g = _gen(2141); n = n_train + n_valid
    cats = torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDS], 1)
    cont = torch.randn(n, n_cont, generator=g)
    w,u = torch.randn(n_cont, classes, generator=g),torch.randn(n_cont, classes, generator=g)
    logits = sum(torch.randn(c, classes, generator=g)[cats[:, i]] for i,c in enumerate(CARDS)) + cont@w/2 + torch.tanh(cont@u)
    y = torch.multinomial(torch.softmax(1.5*logits, 1), 1, generator=g)[:, 0]
    return _split(torch.cat([cats.float(), cont], 1), y, n_valid, seed=2141)

@functools.lru_cache(None)
def dots(n_train, n_valid=1000, side=16, noise=0.5):
    "16x16 images of 1 to 5 small squares, each in its own 4x4 cell at a random offset, in noise; class = how many"
    g = _gen(2151); n = n_train + n_valid
    y = torch.randint(0, 5, (n,), generator=g)
    x = noise*torch.randn(n, 1, side, side, generator=g)
    for i in range(n):
        for cell in torch.randperm(16, generator=g)[:y[i]+1].tolist():
            r,c = (4*torch.tensor(divmod(cell, 4)) + torch.randint(0, 3, (2,), generator=g)).tolist()
            x[i, 0, r:r+2, c:c+2] += 0.6 + 0.8*torch.rand(1, generator=g)
    return _split(x, y, n_valid, seed=2151)

@functools.lru_cache(None)
def blobs2(n_train, n_valid=1000, side=16, noise=0.3):
    "16x16 images of two Gaussian blobs of random width and brightness in noise; class = the quadrant of the brighter one"
    g = _gen(2161); n = n_train + n_valid
    centre,width = side*torch.rand(n, 2, 2, generator=g),1 + 1.5*torch.rand(n, 2, 1, 1, generator=g)
    amp = 0.5 + torch.rand(n, 2, generator=g)
    r,c = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing='ij')
    d2 = (r[None, None] - centre[..., 0, None, None])**2 + (c[None, None] - centre[..., 1, None, None])**2
    x = (amp[..., None, None]*torch.exp(-d2/(2*width**2))).sum(1, keepdim=True) + noise*torch.randn(n, 1, side, side, generator=g)
    top = centre[torch.arange(n), amp.argmax(1)]
    y = 2*(top[:, 0] >= side/2).long() + (top[:, 1] >= side/2).long()
    return _split(x, y, n_valid, seed=2161)

@functools.lru_cache(None)
def pointer(n_train, n_valid=1500, items=16, flip=0.1):
    "Token sequences: the first token points at one of the 16 that follow; the class is the token found there (training labels noisy)"
    g = _gen(2171); n = n_train + n_valid
    x = torch.randint(0, items, (n, items + 1), generator=g)
    xt,yt,xv,yv = _split(x, x[torch.arange(n), 1 + x[:, 0]], n_valid, seed=2171)
    return xt,_noisy(yt, flip, items, seed=2172),xv,yv

@functools.lru_cache(None)
def ridges(n_train, n_valid=2000, n_in=16):
    "Regression: ReLU ridges of 4 random projections and a sine-times-projection interaction, plus noise, standardized"
    g = _gen(2181); n = n_train + n_valid
    x = torch.randn(n, n_in, generator=g)
    w,a = torch.randn(n_in, 4, generator=g)/math.sqrt(n_in),torch.randn(4, generator=g)
    u,v = torch.randn(n_in, generator=g)/math.sqrt(n_in),torch.randn(n_in, generator=g)/math.sqrt(n_in)
    y = torch.relu(x@w)@a + torch.sin(2*x@u)*(x@v) + 0.3*torch.randn(n, generator=g)
    xt,yt,xv,yv = _split(x, y[:, None], n_valid, seed=2181)
    m,s = yt.mean(),yt.std()
    return xt,(yt-m)/s,xv,(yv-m)/s

TRENDS = 5
@functools.lru_cache(None)
def trends(n_train, n_valid, classes=TRENDS, seed=2191, length=24):
    "Noisy sequences of one trend: rising, falling, flat, peak or dip at a random place, with random slope and offset"
    g = _gen(seed); n = n_train + n_valid
    y = torch.randint(0, classes, (n,), generator=g)
    t = torch.linspace(0, 1, length).expand(n, -1)
    turn,slope = 0.3 + 0.4*torch.rand(n, 1, generator=g),1 + 1.5*torch.rand(n, 1, generator=g)
    tent = 1 - (t - turn).abs()/turn.clamp(min=1-turn)
    shapes = torch.stack([t, -t, 0*t, tent, -tent], 1)
    x = slope*shapes[torch.arange(n), y] + 0.5*torch.randn(n, 1, generator=g) + 0.4*torch.randn(n, length, generator=g)
    return _split(x[..., None], y, n_valid, seed=seed)

# ---- models

class ResMLP(nn.Module):
    "Linear stem, residual pre-LayerNorm blocks (Linear-GELU-Linear), final LayerNorm, linear head"
    def __init__(self, n_in, n_out, nh=64, depth=2):
        super().__init__()
        self.stem,self.head = nn.Linear(n_in, nh),nn.Sequential(nn.LayerNorm(nh), nn.Linear(nh, n_out))
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(nh), nn.Linear(nh, 2*nh), nn.GELU(), nn.Linear(2*nh, nh))
                                    for _ in range(depth))
    def forward(self, x):
        h = self.stem(x)
        for b in self.blocks: h = h + b(h)
        return self.head(h)

class BagTagger(nn.Module):
    "Mean of token embeddings (`nn.EmbeddingBag`), a hidden ReLU layer, one logit per tag"
    def __init__(self, vocab=200, d=32, nh=64, n_out=8):
        super().__init__(); self.emb,self.head = nn.EmbeddingBag(vocab, d),nn.Sequential(nn.Linear(d, nh), nn.ReLU(), nn.Linear(nh, n_out))
    def forward(self, x): return self.head(self.emb(x))

class Tabular(nn.Module):
    "fastai's `TabularModel` (embeddings, BatchNorm, layers 200-100) on the columns of one tensor: categories first"
    def __init__(self, n_cont=6, n_out=3):
        super().__init__()
        self.m = TabularModel([(c, min(10, (c+1)//2)) for c in CARDS], n_cont, n_out, [200, 100])
    def forward(self, x): return self.m(x[:, :len(CARDS)].long(), x[:, len(CARDS):])

class GRUBody(nn.Module):
    "One GRU layer read at the last step: the fine-tuning task's body"
    def __init__(self, nh=32): super().__init__(); self.rnn = nn.GRU(1, nh, batch_first=True)
    def forward(self, x): return self.rnn(x)[0][:, -1]

# ---- the fine-tuning task's body: a GRU trained once on 3 of the 5 trends, then fine-tuned on all 5

@functools.lru_cache(None)
def _trends_body():
    "Weights of `GRUBody` pretrained (`suggest_fresh.pretrain`) on 4000 sequences of trends 0-2"
    x,y,_,_ = trends(4000, 1, classes=3, seed=2192)
    return pretrain(lambda: Pretrained(GRUBody(), 32, 3), x, y),32

_prev_body = suggest_tasks._pretrained_body   # already extended by suggest_fresh ('shapes') and suggest_fresh2 ('waves')
def _pretrained_body(kind):
    "`suggest_tasks.learner` loads a fine-tuning task's body by kind: the earlier kinds as before, plus 'trends'"
    return _trends_body() if kind == 'trends' else _prev_body(kind)
suggest_tasks._pretrained_body = _pretrained_body

# ---- the configurations, fixed before any suggestion rule was run on them

TorchRMSprop = functools.partial(OptimWrapper, opt=torch.optim.RMSprop)
Adagrad = functools.partial(OptimWrapper, opt=torch.optim.Adagrad)
Nesterov = functools.partial(OptimWrapper, opt=functools.partial(torch.optim.SGD, momentum=0.9, nesterov=True, weight_decay=5e-4))
AdamWD = functools.partial(Adam, wd=0.1)

FRESH3 = [
    Task('rings_deep_mlp_rmsprop_noisy', lambda: rings(3000), lambda: mlp(2, 2, nh=32, depth=4), 'ce', TorchRMSprop, 32, 4,
         (1e-5, 1e-1), True, about='scikit-learn noisy circles (3000), 10% label noise, 4-layer MLP, torch RMSprop'),
    Task('friedman2_mse_adam_wd', lambda: friedman2(3000), lambda: mlp(4, 1, depth=3), 'mse', AdamWD, 128, 5, (1e-4, 1), True,
         about='scikit-learn Friedman #2 regression (3000), 3-layer MLP, weight decay 0.1'),
    Task('friedman3_tiny_mse_gelu_bs16', lambda: friedman3(400), lambda: mlp(4, 1, act=nn.GELU), 'mse', QHAdam, 16, 10,
         (1e-5, 1), True, about='scikit-learn Friedman #3 regression (400), GELU MLP'),
    Task('bags_embbag_bce_adagrad', lambda: bags(5000), BagTagger, 'bce', Adagrad, 32, 3, (1e-4, 100), True,
         about='synthetic bags of tokens (5000), multi-label, EmbeddingBag, torch Adagrad'),
    Task('tabular_embed_lamb_bs512_1ep', lambda: tabular(25000), Tabular, 'ce', Lamb, 512, 1, (1e-4, 10), True,
         about="synthetic categorical + continuous table (25000), fastai's TabularModel"),
    Task('dots_cnn2d_bn_nesterov_wd', lambda: dots(6000), lambda: conv2d(5, bn=True, pool=2), 'ce', Nesterov, 128, 3, (1e-3, 10),
         True, about='synthetic images of 1-5 dots (6000), 2-D CNN with BatchNorm, torch SGD Nesterov, weight decay 5e-4'),
    Task('finetune_trends_gru', lambda: trends(600, 1000, seed=2193), lambda: Pretrained(GRUBody(), 32, TRENDS), 'ce', Adam, 32, 3,
         (1e-4, 1e3), True, fine_tune='trends', about='synthetic trends, 5 classes (600), frozen GRU body pretrained on 3'),
    Task('pointer_attn_radam', lambda: pointer(4000), lambda: AttnReg(16, 17, 32, 16), 'ce', RAdam, 64, 4, (1e-4, 1), True,
         about='synthetic pointer-lookup token sequences (4000), 10% label noise, self-attention read at the first token'),
    Task('ridges_resmlp_ln_mse_ranger', lambda: ridges(12000), lambda: ResMLP(16, 1), 'mse', ranger, 64, 2, (1e-4, 1), True,
         about='synthetic regression (12000), residual MLP with LayerNorm'),
    Task('blobs2_cnn2d_nobn_sgd', lambda: blobs2(5000), lambda: conv2d(4, pool=2), 'ce', SGD, 64, 6, (1e-2, 10), True,
         about='synthetic images of 2 blobs (5000), quadrant of the brighter, 2-D CNN without BatchNorm, SGD without momentum'),
]

if __name__ == '__main__': cli(FRESH3, CACHE)
