"""A fifth fresh held-out set for `bench/suggest.py`: 10 task configurations that no suggestion rule was tuned or looked at on.

The first four fresh sets (`bench/suggest_fresh.py` to `suggest_fresh4.py`) have been looked at, so they are no longer
held out. These 10 were defined, and their grids fixed, from grid scores alone, and committed before any suggestion rule
was run on them. They differ from the 56 earlier tasks (and from each other) in model family (a residual MLP with
LayerNorm, a CNN with GroupNorm, a patch transformer with dropout, a GRU on token embeddings, a fine-tuned embedding-bag
body, a CNN with BatchNorm, a tanh MLP), loss, data size, label noise, batch size, optimizer (Lamb, SGD with and without
momentum, QHAdam, torch AdamW, RAdam, RMSProp, Adam, Larc, ranger), weight decay, budget and fine-tuning; all data is
generated here with its own seeds, 4101 and up (no download, no dataset or generator configuration of the earlier tasks).
Every validation set has 1000 samples or more.

    timeout 3600 .venv/bin/python bench/suggest_fresh5.py --fill [--seeds S ...] [--tasks NAME ...]   # grids, curves
    .venv/bin/python bench/suggest_fresh5.py --grid                                                   # grid table

`--fill` writes bench/suggest_fresh5_cache.json (`suggest.Cache`: every grid rate and seed, and each seed's range test).
"""
import functools, math, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
import suggest_tasks
from suggest_tasks import Task, Pretrained, _split, _noisy, mnist1d, mlp as drop_mlp
from suggest_fresh import cli, pretrain, _shape, SHAPES
from suggest_fresh2 import _gen, mlp, conv2d
from suggest_fresh3 import _tensors, ResMLP
from fastai.optimizer import Adam, SGD, RMSProp, ranger, QHAdam, RAdam, Larc, Lamb, OptimWrapper

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_fresh5_cache.json')

# ---- data: (x_train, y_train, x_valid, y_valid), fixed whatever the training seed

@functools.lru_cache(None)
def quantiles(n_train, n_valid=1500, flip=0.1):
    "scikit-learn's Gaussian quantiles: 5 nested shells of a 6-D Gaussian; a fraction `flip` of the training labels replaced"
    from sklearn.datasets import make_gaussian_quantiles
    x,y = make_gaussian_quantiles(n_samples=n_train + n_valid, n_features=6, n_classes=5, random_state=4101)
    xt,yt,xv,yv = _tensors(x, y, n_valid, 4101)
    return xt,_noisy(yt, flip, 5, seed=4102),xv,yv

@functools.lru_cache(None)
def swissroll(n_train, n_valid=2000):
    "scikit-learn's noisy 3-D swiss roll; regress the position along the roll, standardized"
    from sklearn.datasets import make_swiss_roll
    return _tensors(*make_swiss_roll(n_train + n_valid, noise=2.5, random_state=4111), n_valid, 4111, std_y=True)

@functools.lru_cache(None)
def lowrank(n_train, n_valid=1000):
    "scikit-learn's regression on 40 inputs of effective rank 6 (12 informative), its target bent by a square, plus noise"
    from sklearn.datasets import make_regression
    x,y = make_regression(n_train + n_valid, 40, n_informative=12, effective_rank=6, tail_strength=0.3, noise=0.0, random_state=4121)
    y = y/y.std()
    return _tensors(x, y + 0.5*y**2 + 0.4*torch.randn(len(y), generator=_gen(4122)).numpy(), n_valid, 4121, std_y=True)

@functools.lru_cache(None)
def scenes(n_train, n_valid=1000, side=16, noise=0.2):
    "16x16 images holding each of `suggest_fresh`'s 6 shapes with probability 0.3, at random places, in noise; multi-label"
    g = _gen(4131); n = n_train + n_valid
    y = (torch.rand(n, SHAPES, generator=g) < 0.3).float()
    stencils = torch.stack([_shape(k) for k in range(SHAPES)])
    x = noise*torch.randn(n, 1, side, side, generator=g)
    pos = torch.randint(0, side-4, (n, SHAPES, 2), generator=g)
    for i in range(n):
        for k in y[i].nonzero()[:, 0].tolist():
            r,c = pos[i, k].tolist()
            x[i, 0, r:r+5, c:c+5] += stencils[k]
    return _split(x, y, n_valid, seed=4131)

def mnist1d_hard():
    "MNIST-1D generated anew (seed 4141, 6000 samples) with more noise, scaling and shear than its defaults; 4800 train, 1200 validation"
    return mnist1d(6000, 4141, iid_noise_scale=0.05, corr_noise_scale=0.35, scale_coeff=0.5, shear_scale=0.9)

@functools.lru_cache(None)
def brackets(n_train, n_valid=2000, length=20, vocab=30):
    "Token sequences of brackets (tokens 1, 2) among filler tokens: class = whether the brackets balance; half are near misses"
    g = _gen(4151); n = n_train + n_valid
    x,y = torch.randint(3, vocab, (n, length), generator=g),torch.randint(0, 2, (n,), generator=g)
    for i in range(n):
        k = 2*int(torch.randint(2, 6, (1,), generator=g))
        seq = [1]*(k//2) + [2]*(k//2)
        while True:   # a random balanced sequence, by rejection
            seq = [seq[j] for j in torch.randperm(k, generator=g).tolist()]
            if all(sum(1 if t == 1 else -1 for t in seq[:j+1]) >= 0 for j in range(k)): break
        if y[i] == 0:   # a near miss: one bracket flipped, or the whole order reversed (it then opens with a closing bracket)
            j = int(torch.randint(0, k, (1,), generator=g))
            if bool(torch.rand(1, generator=g) < 0.5): seq[j] = 3 - seq[j]
            else: seq = seq[::-1]
        x[i, torch.randperm(length, generator=g)[:k].sort().values] = torch.tensor(seq)
    return _split(x, y, n_valid, seed=4151)

@functools.lru_cache(None)
def topics(n_train, n_valid, first=0, classes=6, seed=4161, vocab=300, words=20, length=24, share=0.3):
    "Documents of 24 tokens: a share from their topic's 20 keywords (topics `first` to `first+classes-1`), the rest any token"
    g = _gen(seed); n = n_train + n_valid
    keywords = torch.randperm(vocab, generator=_gen(4160))[:10*words].reshape(10, words)   # the same 10 topics for every call
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randint(0, vocab, (n, length), generator=g)
    topical = torch.rand(n, length, generator=g) < share
    kw = keywords[first + y][torch.arange(n)[:, None], torch.randint(0, words, (n, length), generator=g)]
    return _split(torch.where(topical, kw, x), y, n_valid, seed=seed)

@functools.lru_cache(None)
def strokes(n_train, n_valid=1000, side=16, noise=0.5):
    "16x16 images of a blurred line through a point near the centre; regress (cos 2a, sin 2a) of its angle a"
    g = _gen(4171); n = n_train + n_valid
    a = math.pi*torch.rand(n, generator=g)
    c = 2*torch.randn(n, 2, generator=g)
    r = torch.arange(side).float() - side/2 + 0.5
    yy,xx = r[:, None] - c[:, 0, None, None],r[None] - c[:, 1, None, None]
    dist = (xx*a.sin()[:, None, None] - yy*a.cos()[:, None, None]).abs()      # distance of each pixel to the line
    x = torch.exp(-dist**2) + noise*torch.randn(n, side, side, generator=g)
    return _split(x[:, None], torch.stack([(2*a).cos(), (2*a).sin()], 1), n_valid, seed=4171)

@functools.lru_cache(None)
def xor20(n_train, n_valid=2000, flip=0.05):
    "20 Gaussian inputs; class = whether the product of the first two, plus noise, is positive (18 are distractors); training labels noisy"
    g = _gen(4181); n = n_train + n_valid
    x = torch.randn(n, 20, generator=g)
    xt,yt,xv,yv = _split(x, (x[:, 0]*x[:, 1] + 0.3*torch.randn(n, generator=g) > 0).long(), n_valid, seed=4181)
    return xt,_noisy(yt, flip, 2, seed=4182),xv,yv

@functools.lru_cache(None)
def moons(n_train, n_valid=1000, flip=0.2):
    "scikit-learn's two noisy moons; a fraction `flip` of the training labels replaced at random"
    from sklearn.datasets import make_moons
    xt,yt,xv,yv = _tensors(*make_moons(n_train + n_valid, noise=0.2, random_state=4191), n_valid, 4191)
    return xt,_noisy(yt, flip, 2, seed=4192),xv,yv

# ---- models

def conv2d_gn(n_out, nf=16, groups=4):
    "Three 3x3 conv blocks with GroupNorm (the last two with stride 2), global max pooling, linear head"
    def block(ni, no, stride): return [nn.Conv2d(ni, no, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(groups, no), nn.ReLU()]
    return nn.Sequential(*block(1, nf, 1), *block(nf, 2*nf, 2), *block(2*nf, 2*nf, 2), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(2*nf, n_out))

class PatchTransformer(nn.Module):
    "MNIST-1D's 40 values cut into 10 patches of 4, embedded with positions, one pre-norm transformer layer with dropout, mean pooling"
    def __init__(self, n_out=10, d=32, patch=4, length=40, drop=0.1):
        super().__init__()
        self.embed,self.pos = nn.Conv1d(1, d, patch, stride=patch),nn.Parameter(0.1*torch.randn(length//patch, d))
        self.layer = nn.TransformerEncoderLayer(d, 4, 2*d, dropout=drop, batch_first=True, norm_first=True)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, n_out))
    def forward(self, x): return self.head(self.layer(self.embed(x[:, None]).transpose(1, 2) + self.pos).mean(1))

class TokenGRU(nn.Module):
    "Token embeddings, one GRU layer read at the last step, linear head"
    def __init__(self, vocab=30, d=16, nh=32, n_out=2):
        super().__init__(); self.emb,self.rnn,self.head = nn.Embedding(vocab, d),nn.GRU(d, nh, batch_first=True),nn.Linear(nh, n_out)
    def forward(self, x): return self.head(self.rnn(self.emb(x))[0][:, -1])

class BagBody(nn.Module):
    "Mean of token embeddings (`nn.EmbeddingBag`) and a ReLU layer: the fine-tuning task's body"
    def __init__(self, vocab=300, d=32): super().__init__(); self.emb,self.lin = nn.EmbeddingBag(vocab, d),nn.Linear(d, d)
    def forward(self, x): return torch.relu(self.lin(self.emb(x)))

# ---- the fine-tuning task's body: an embedding bag trained once on topics 0-5, fine-tuned on topics 3-8

@functools.lru_cache(None)
def _topics_body():
    """Weights of `BagBody` pretrained (`suggest_fresh.pretrain`) on 4000 documents of topics 0-5.
    Its seed is none of the tasks' 0-4: under the same seed, the new head would start as the pretraining head did."""
    x,y,_,_ = topics(4000, 1, seed=4162)
    return pretrain(lambda: Pretrained(BagBody(), 32, 6), x, y, seed=4199),32

_prev_body = suggest_tasks._pretrained_body   # already extended by the earlier fresh sets
def _pretrained_body(kind):
    "`suggest_tasks.learner` loads a fine-tuning task's body by kind: the earlier kinds as before, plus 'topics'"
    return _topics_body() if kind == 'topics' else _prev_body(kind)
suggest_tasks._pretrained_body = _pretrained_body

# ---- the configurations, fixed before any suggestion rule was run on them

AdamW = functools.partial(OptimWrapper, opt=functools.partial(torch.optim.AdamW, weight_decay=0.05))
SGDwd = functools.partial(SGD, mom=0.9, wd=1e-4)

FRESH5 = [
    Task('quantiles_resmlp_ln_lamb_noisy', lambda: quantiles(6000), lambda: ResMLP(6, 5), 'ce', Lamb, 128, 4, (1e-4, 10), True,
         about='scikit-learn Gaussian quantiles, 5 classes (6000), 10% label noise, residual MLP with LayerNorm'),
    Task('swissroll_mse_sgd_wd_bs256', lambda: swissroll(8000), lambda: mlp(3, 1, depth=3), 'mse', SGDwd, 256, 6, (1e-3, 10), True,
         about='scikit-learn noisy swiss roll (8000), position regression, 3-layer MLP, momentum 0.9, weight decay 1e-4'),
    Task('lowrank_dropout_mse_qhadam', lambda: lowrank(1500), lambda: drop_mlp(40, 1, drop=0.2), 'mse', QHAdam, 32, 5, (1e-5, 1),
         True, about='scikit-learn low-rank regression, bent (1500), MLP with dropout 0.2'),
    Task('scenes_cnn_gn_bce_adamw', lambda: scenes(3000), lambda: conv2d_gn(SHAPES), 'bce', AdamW, 64, 6, (1e-5, 1), True,
         about='synthetic scenes of 6 shapes (3000), multi-label, CNN with GroupNorm, torch AdamW (weight decay 0.05)'),
    Task('mnist1d_hard_transformer_radam', mnist1d_hard, PatchTransformer, 'ce', RAdam, 128, 6, (1e-5, 1), True,
         about='MNIST-1D regenerated with more noise and shear (4800), patch transformer with dropout'),
    Task('brackets_gru_rmsprop_2ep', lambda: brackets(5000), TokenGRU, 'ce', RMSProp, 32, 2, (1e-5, 1), True,
         about='synthetic bracket sequences, balanced or not (5000), token embeddings and a GRU'),
    Task('finetune_topics_bag_adam', lambda: topics(600, 1000, first=3, seed=4163), lambda: Pretrained(BagBody(), 32, 6), 'ce',
         Adam, 32, 2, (1e-4, 1e3), True, fine_tune='topics',
         about='synthetic topic documents, 6 topics (600), frozen embedding-bag body pretrained on 6 others, 3 of them shared'),
    Task('strokes_cnn_bn_mse_larc', lambda: strokes(6000), lambda: conv2d(2, bn=True, pool=2), 'mse', Larc, 256, 4, (1e-3, 10),
         True, about='synthetic line images (6000), angle regression, CNN with BatchNorm'),
    Task('xor20_dropout_ranger_bs512_2ep', lambda: xor20(30000), lambda: drop_mlp(20, 2, nh=128, drop=0.2), 'ce', ranger, 512, 2,
         (1e-4, 10), True, about='synthetic XOR of 2 signs among 20 inputs (30000), 5% label noise, MLP with dropout 0.2'),
    Task('moons_tanh_sgd_bs16_noisy', lambda: moons(400), lambda: mlp(2, 2, nh=32, act=nn.Tanh), 'ce', SGD, 16, 10, (1e-4, 100),
         True, about='scikit-learn noisy moons (400), 20% label noise, tanh MLP, SGD without momentum'),
]

if __name__ == '__main__': cli(FRESH5, CACHE)
