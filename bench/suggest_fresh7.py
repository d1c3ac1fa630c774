"""A seventh fresh held-out set for `bench/suggest.py`: 10 task configurations that no suggestion rule was tuned or looked at on.

The first six fresh sets (`bench/suggest_fresh.py` to `suggest_fresh6.py`) have been looked at, so they are no longer
held out. These 10 were defined, and their grids fixed, from grid scores alone, and committed before any suggestion rule
was run on them. They differ from the 76 earlier tasks (and from each other) in model family (a bidirectional GRU with
mean pooling, token embeddings and a 1-D CNN with BatchNorm and max pooling, a 2-D CNN without normalization,
self-attention, categorical embeddings and an MLP, a small MLP with BatchNorm, a SELU MLP, and three fine-tuned bodies: a
2-D CNN with BatchNorm, a residual MLP with LayerNorm, a GRU on token embeddings), loss (four of them regressions or
multi-label, two of those fine-tuned), data size, label noise, batch size, optimizer (torch RAdam, QHAdam, SGD with
momentum 0.8, Adam with a 0.98 second moment, torch Adam with L2 weight decay, LARS without clipping, RMSProp with
momentum, RAdam, Lamb, ranger), budget and fine-tuning (pretraining tasks close to, far from and halfway to the task);
all data is generated here with its own seeds, 7101 and up (no download, no dataset or generator configuration of the
earlier tasks). Every validation set has 1000 samples or more.

    timeout 3600 .venv/bin/python bench/suggest_fresh7.py --fill [--seeds S ...] [--tasks NAME ...]   # grids, curves
    .venv/bin/python bench/suggest_fresh7.py --grid                                                   # grid table

`--fill` writes bench/suggest_fresh7_cache.json (`suggest.Cache`: every grid rate and seed, and each seed's range test).
"""
import functools, math, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
import suggest_tasks
from suggest_tasks import Task, Pretrained, Attn, _split, _noisy
from suggest_fresh import cli, pretrain
from suggest_fresh2 import _gen, mlp, conv2d
from suggest_fresh3 import _tensors
from suggest_fresh6 import _std_target
from fastai.optimizer import Adam, SGD, RMSProp, QHAdam, RAdam, Larc, Lamb, ranger, OptimWrapper

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_fresh7_cache.json')

# ---- data: (x_train, y_train, x_valid, y_valid), fixed whatever the training seed

@functools.lru_cache(None)
def ar2(n_train, n_valid=1000, length=24):
    "Noisy AR(2) sequences of random pole radius (0.5 to 0.98) and angle (0.2 to 2.8), scaled to unit variance; regress the angle"
    g = _gen(7101); n = n_train + n_valid
    r,th = 0.5 + 0.48*torch.rand(n, generator=g),0.2 + 2.6*torch.rand(n, generator=g)
    e = torch.randn(n, length + 20, generator=g)
    x = torch.zeros(n, length + 20)
    for t in range(2, length + 20): x[:, t] = 2*r*th.cos()*x[:, t-1] - r**2*x[:, t-2] + e[:, t]
    x = x[:, 20:]
    x = x/x.std(1, keepdim=True) + 0.3*torch.randn(n, length, generator=g)
    return _std_target(*_split(x[..., None], th, n_valid, seed=7101))

@functools.lru_cache(None)
def motifs(n_train, n_valid=1000, length=20, vocab=10, tags=6):
    "Token sequences (20 out of 10); tag j when the fixed bigram j occurs anywhere (about 17% positives each); multi-label"
    g = _gen(7111); n = n_train + n_valid
    pairs = torch.randint(0, vocab, (tags, 2), generator=_gen(7112))
    x = torch.randint(0, vocab, (n, length), generator=g)
    y = torch.stack([((x[:, :-1] == a) & (x[:, 1:] == b)).any(1) for a,b in pairs.tolist()], 1).float()
    return _split(x, y, n_valid, seed=7111)

@functools.lru_cache(None)
def arrows(n_train, n_valid=1000, side=12, noise=0.5, flip=0.15):
    "12x12 images of an arrow (a line with a bright tip) from near the centre in one of 8 directions, in noise; labels noisy"
    g = _gen(7121); n = n_train + n_valid
    y = torch.randint(0, 8, (n,), generator=g)
    ang = y*math.pi/4 + 0.4*(torch.rand(n, generator=g) - 0.5)
    d = torch.stack([ang.cos(), ang.sin()], 1)
    c = (side - 1)/2 + 2*(torch.rand(n, 2, generator=g) - 0.5)
    length = 3 + 2*torch.rand(n, generator=g)
    rr,cc = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing='ij')
    p = torch.stack([rr, cc], -1).reshape(1, -1, 2) - c[:, None]
    t = (p*d[:, None]).sum(-1).clamp(min=0)
    t = torch.minimum(t, length[:, None])
    line = torch.exp(-((p - t[..., None]*d[:, None])**2).sum(-1)/0.5)
    tip = torch.exp(-((p - length[:, None, None]*d[:, None])**2).sum(-1)/0.8)
    x = (line + 1.5*tip).reshape(n, 1, side, side) + noise*torch.randn(n, 1, side, side, generator=g)
    xt,yt,xv,yv = _split(x, y, n_valid, seed=7121)
    return xt,_noisy(yt, flip, 8, seed=7122),xv,yv

@functools.lru_cache(None)
def inversions(n_train, n_valid=1000, length=10, vocab=16):
    "Token sequences (10 out of 16); regress their (standardized) number of inversions, pairs out of order"
    g = _gen(7131); n = n_train + n_valid
    x = torch.randint(0, vocab, (n, length), generator=g)
    y = (x[:, :, None] > x[:, None, :]).triu(1).sum((1, 2)).float()
    return _std_target(*_split(x, y, n_valid, seed=7131))

CARDS7 = (40, 120, 7)   # stores, products, weekdays
@functools.lru_cache(None)
def shops(n_train, n_valid=2000, classes=4, flip=0.2):
    "Sales records (store, product, weekday): the class is the argmax of hidden per-column scores and a store-product interaction"
    g = _gen(7141); n = n_train + n_valid
    cols = [torch.randint(0, c, (n,), generator=g) for c in CARDS7]
    tables = [torch.randn(c, classes, generator=g) for c in CARDS7]
    us,up = torch.randn(CARDS7[0], 3, classes, generator=g),torch.randn(CARDS7[1], 3, generator=g)
    score = sum(t[c] for t,c in zip(tables, cols)) + (us[cols[0]]*up[cols[1]][..., None]).sum(1) + 0.5*torch.randn(n, classes, generator=g)
    xt,yt,xv,yv = _split(torch.stack(cols, 1), score.argmax(1), n_valid, seed=7141)
    return xt,_noisy(yt, flip, classes, seed=7142),xv,yv

@functools.lru_cache(None)
def trio(n_train, n_valid=1000, flip=0.1):
    "scikit-learn's `make_classification`: 3 classes of one cluster each in 6-D (4 informative, 1 redundant); labels noisy"
    from sklearn.datasets import make_classification
    x,y = make_classification(n_train + n_valid, 6, n_informative=4, n_redundant=1, n_classes=3, n_clusters_per_class=1,
                              flip_y=0., class_sep=1.2, random_state=7151)
    xt,yt,xv,yv = _tensors(x, y, n_valid, 7151)
    return xt,_noisy(yt, flip, 3, seed=7152),xv,yv

@functools.lru_cache(None)
def hypercube6(n_train, n_valid=2000):
    "scikit-learn's `make_classification`: 6 classes of 3 clusters each in 16-D (10 informative, 4 redundant)"
    from sklearn.datasets import make_classification
    x,y = make_classification(n_train + n_valid, 16, n_informative=10, n_redundant=4, n_classes=6, n_clusters_per_class=3,
                              class_sep=1.5, random_state=7161)
    return _tensors(x, y, n_valid, 7161)

@functools.lru_cache(None)
def tiles(n_train, n_valid, first=0, classes=6, seed=7171, side=12, noise=1.0):
    "12x12 images of one of 10 fixed plane waves (orientation and frequency; classes `first` on), random phase and contrast, in noise"
    g = _gen(seed); n = n_train + n_valid
    k = torch.arange(10).float()
    ang,freq = k*math.pi/10 + 0.1*torch.rand(10, generator=_gen(7170)),torch.where(k % 2 == 0, 0.14, 0.24)
    y = torch.randint(0, classes, (n,), generator=g)
    rr,cc = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing='ij')
    a,f = ang[first + y],freq[first + y]
    phase,amp = 2*math.pi*torch.rand(n, generator=g),0.6 + 0.6*torch.rand(n, generator=g)
    arg = 2*math.pi*f[:, None, None]*(a.cos()[:, None, None]*rr + a.sin()[:, None, None]*cc) + phase[:, None, None]
    x = amp[:, None, None]*arg.cos() + noise*torch.randn(n, side, side, generator=g)
    return _split(x[:, None], y, n_valid, seed=seed)

@functools.lru_cache(None)
def clusters10(n_train, n_valid=1, k=8, n_in=10):
    "The distant pretraining task of the residual MLP: which of 8 Gaussian clusters in 10-D a point comes from"
    g = _gen(7181); n = n_train + n_valid
    centres,c = 1.5*torch.randn(k, n_in, generator=g),torch.randint(0, k, (n,), generator=g)
    return _split(centres[c] + torch.randn(n, n_in, generator=g), c, n_valid, seed=7181)

@functools.lru_cache(None)
def sines(n_train, n_valid=1000, n_in=10):
    "Regression on standard normal inputs in 10-D: a sum of sines of 3 random projections plus a square, noise; standardized"
    g = _gen(7183); n = n_train + n_valid
    x = torch.randn(n, n_in, generator=g)
    w = torch.randn(n_in, 4, generator=g)/math.sqrt(n_in)
    p = x@w
    y = torch.sin(2*p[:, :3]).sum(1) + 0.5*p[:, 3]**2 + 0.3*torch.randn(n, generator=g)
    return _std_target(*_split(x, y, n_valid, seed=7183))

@functools.lru_cache(None)
def firsttok(n_train, n_valid=1, length=16, vocab=12):
    "The GRU body's pretraining task: which of the tokens 0-5 occurs first in a sequence of 16 out of 12 (0 if none)"
    g = _gen(7191); n = n_train + n_valid
    x = torch.randint(0, vocab, (n, length), generator=g)
    first = torch.gather(x, 1, (x < 6).int().argmax(1, keepdim=True))[:, 0]
    return _split(x, torch.where((x < 6).any(1), first, torch.zeros_like(first)), n_valid, seed=7191)

@functools.lru_cache(None)
def counts(n_train, n_valid=1000, length=16, vocab=12, tags=8):
    "Token sequences as `firsttok`'s; tag j (tokens 0-7) when token j occurs at least twice (about 39% positives); multi-label"
    g = _gen(7193); n = n_train + n_valid
    x = torch.randint(0, vocab, (n, length), generator=g)
    y = torch.stack([(x == j).sum(1) >= 2 for j in range(tags)], 1).float()
    return _split(x, y, n_valid, seed=7193)

# ---- models

class BiGRU(nn.Module):
    "A bidirectional GRU, its outputs averaged over time, linear head"
    def __init__(self, n_in=1, nh=16, n_out=1):
        super().__init__(); self.rnn,self.head = nn.GRU(n_in, nh, batch_first=True, bidirectional=True),nn.Linear(2*nh, n_out)
    def forward(self, x): return self.head(self.rnn(x)[0].mean(1))

class EmbCNN(nn.Module):
    "Token embeddings, two 1-D conv blocks with BatchNorm, global max pooling, one logit per tag"
    def __init__(self, vocab=10, d=16, nf=32, n_out=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.conv = nn.Sequential(nn.Conv1d(d, nf, 3, padding=1, bias=False), nn.BatchNorm1d(nf), nn.ReLU(),
                                  nn.Conv1d(nf, nf, 3, padding=1, bias=False), nn.BatchNorm1d(nf), nn.ReLU())
        self.head = nn.Linear(nf, n_out)
    def forward(self, x): return self.head(self.conv(self.emb(x).transpose(1, 2)).amax(2))

class EmbMLP(nn.Module):
    "One embedding per categorical column, concatenated, a two-layer ReLU MLP"
    def __init__(self, cards=CARDS7, dims=(8, 12, 3), nh=64, n_out=4):
        super().__init__()
        self.embs = nn.ModuleList(nn.Embedding(c, d) for c,d in zip(cards, dims))
        self.mlp = nn.Sequential(nn.Linear(sum(dims), nh), nn.ReLU(), nn.Linear(nh, nh), nn.ReLU(), nn.Linear(nh, n_out))
    def forward(self, x): return self.mlp(torch.cat([e(x[:, i]) for i,e in enumerate(self.embs)], 1))

class ResLNBody(nn.Module):
    "A linear stem, two residual pre-LayerNorm blocks (Linear-GELU-Linear), a final LayerNorm: the distant fine-tuning body"
    def __init__(self, n_in=10, nh=48):
        super().__init__()
        self.stem,self.norm = nn.Linear(n_in, nh),nn.LayerNorm(nh)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(nh), nn.Linear(nh, 2*nh), nn.GELU(), nn.Linear(2*nh, nh))
                                    for _ in range(2))
    def forward(self, x):
        h = self.stem(x)
        for b in self.blocks: h = h + b(h)
        return self.norm(h)

class TokenGRUBody(nn.Module):
    "Token embeddings and one GRU layer read at the last step: the halfway fine-tuning body"
    def __init__(self, vocab=12, d=16, nh=32):
        super().__init__(); self.emb,self.rnn = nn.Embedding(vocab, d),nn.GRU(d, nh, batch_first=True)
    def forward(self, x): return self.rnn(self.emb(x))[0][:, -1]

# ---- the fine-tuning tasks' bodies, each trained once (`suggest_fresh.pretrain`) with a seed none of the tasks' 0-4 (under
# the same seed, the new head would start as the pretraining head did)

@functools.lru_cache(None)
def _tiles_body():
    "A 2-D CNN with BatchNorm pretrained on 4000 images of tiles 0-5; fine-tuned on tiles 3-9 (close: the same images, 3 shared)"
    x,y,_,_ = tiles(4000, 1, seed=7172)
    return pretrain(lambda: Pretrained(conv2d(6, bn=True, pool=2)[:-1], 128, 6), x, y, seed=7198),128

@functools.lru_cache(None)
def _clusters10_body():
    "`ResLNBody` pretrained on 4000 points of `clusters10`; fine-tuned on the `sines` regression (distant: another target)"
    x,y,_,_ = clusters10(4000)
    return pretrain(lambda: Pretrained(ResLNBody(), 48, 8), x, y, seed=7197),48

@functools.lru_cache(None)
def _firsttok_body():
    "`TokenGRUBody` pretrained on 4000 sequences of `firsttok`; fine-tuned on `counts` (halfway: the same sequences, another question)"
    x,y,_,_ = firsttok(4000)
    return pretrain(lambda: Pretrained(TokenGRUBody(), 32, 6), x, y, seed=7196),32

_BODIES = {'tiles': _tiles_body, 'clusters10': _clusters10_body, 'firsttok': _firsttok_body}
_prev_body = suggest_tasks._pretrained_body   # already extended by the earlier fresh sets imported here
def _pretrained_body(kind):
    "`suggest_tasks.learner` loads a fine-tuning task's body by kind: the earlier kinds as before, plus this set's three"
    return _BODIES[kind]() if kind in _BODIES else _prev_body(kind)
suggest_tasks._pretrained_body = _pretrained_body

# ---- the configurations, fixed before any suggestion rule was run on them

TorchRAdam = functools.partial(OptimWrapper, opt=torch.optim.RAdam)
SGDm8 = functools.partial(SGD, mom=0.8)
AdamB98 = functools.partial(Adam, sqr_mom=0.98, eps=1e-6)
TorchAdamL2 = functools.partial(OptimWrapper, opt=functools.partial(torch.optim.Adam, weight_decay=1e-4))
Lars = functools.partial(Larc, clip=False)
RMSPropMom = functools.partial(RMSProp, mom=0.9)

FRESH7 = [
    Task('ar2_bigru_mse_torchradam', lambda: ar2(2500), BiGRU, 'mse', TorchRAdam, 64, 3, (1e-4, 10), True,
         about='synthetic AR(2) sequences (2500), bidirectional GRU with mean pooling regressing the pole angle, torch RAdam'),
    Task('motifs_embcnn_bn_bce_qhadam', lambda: motifs(2000), EmbCNN, 'bce', QHAdam, 128, 4, (1e-5, 1), True,
         about='synthetic token sequences (2000), multi-label bigram presence, embeddings and a 1-D CNN with BatchNorm, max pooling'),
    Task('arrows_cnn2d_nobn_sgd_mom08_noisy', lambda: arrows(3000), lambda: conv2d(8, pool=2), 'ce', SGDm8, 32, 3, (1e-3, 10),
         True, about='synthetic arrow images, 8 directions (3000), 15% label noise, 2-D CNN without normalization, momentum 0.8'),
    Task('inversions_attn_mse_adam_b98', lambda: inversions(5000), lambda: Attn(16, 10, 32, 1), 'mse', AdamB98, 256, 6, (1e-5, 1),
         True, about='synthetic token sequences (5000), self-attention regressing their inversion count, Adam with sqr_mom 0.98'),
    Task('shops_embmlp_torchadam_l2_bs512_noisy', lambda: shops(40000), EmbMLP, 'ce', TorchAdamL2, 512, 2, (1e-5, 1), True,
         about='synthetic (store, product, weekday) records, 4 classes (40000), 20% label noise, categorical embeddings and an MLP, '
               'torch Adam with L2 weight decay 1e-4'),
    Task('trio_bn_lars_bs16_noisy', lambda: trio(400), lambda: mlp(6, 3, nh=32, bn=True), 'ce', Lars, 16, 10, (1e-3, 10), True,
         about='scikit-learn 3-class clusters in 6-D (400), 10% label noise, small MLP with BatchNorm, LARS without clipping'),
    Task('hypercube6_selu_rmsprop_mom', lambda: hypercube6(12000), lambda: mlp(16, 6, depth=3, act=nn.SELU), 'ce', RMSPropMom,
         128, 4, (1e-5, 1e-1), True, about='scikit-learn 6 classes of 3 clusters in 16-D (12000), 3-layer SELU MLP, RMSProp with momentum 0.9'),
    Task('finetune_tiles_cnn2d_bn_radam', lambda: tiles(600, 1000, first=3, classes=7, seed=7173),
         lambda: Pretrained(conv2d(7, bn=True, pool=2)[:-1], 128, 7), 'ce', RAdam, 32, 3, (1e-3, 100), True, fine_tune='tiles',
         about='synthetic plane-wave tiles, 7 classes (600), frozen 2-D CNN body with BatchNorm pretrained on 6 others, 3 of them shared'),
    Task('finetune_sines_resln_mse_lamb', lambda: sines(3000), lambda: Pretrained(ResLNBody(), 48, 1), 'mse', Lamb, 64, 3,
         (1e-4, 10), True, fine_tune='clusters10',
         about='synthetic regression in 10-D (3000), frozen residual MLP body with LayerNorm pretrained on a distant 8-cluster task'),
    Task('finetune_counts_tokengru_bce_ranger_bs16', lambda: counts(1500), lambda: Pretrained(TokenGRUBody(), 32, 8), 'bce', ranger,
         16, 1, (1e-2, 1e3), True, fine_tune='firsttok',
         about='synthetic token sequences (1500), multi-label repeated tokens, frozen token-GRU body pretrained on which token comes first'),
]

if __name__ == '__main__': cli(FRESH7, CACHE)
