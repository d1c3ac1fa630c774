"""A fourth fresh held-out set for `bench/suggest.py`: 10 task configurations that no suggestion rule was tuned or looked at on.

The first three fresh sets (`bench/suggest_fresh.py`, `suggest_fresh2.py`, `suggest_fresh3.py`) have been looked at, so
they are no longer held out. These 10 were defined, and their grids fixed, from grid scores alone, and committed before
any suggestion rule was run on them. They differ from the 46 earlier tasks (and from each other) in model family (a deep
narrow MLP, a wide shallow one, dropout, an LSTM, a residual CNN, a text CNN on embeddings, a pretrained attention body),
loss (label smoothing among them), data size, label noise, batch size, optimizer (LARS, torch Adadelta and Adam, weight
decay, other momentums), budget and fine-tuning; all data is generated here with its own seeds (no download, no dataset
of the earlier tasks). Every validation set has 1000 samples or more, except scikit-learn's bundled diabetes data (442
samples in all: 142 for validation).

    timeout 3600 .venv/bin/python bench/suggest_fresh4.py --fill [--seeds S ...] [--tasks NAME ...]   # grids, curves
    .venv/bin/python bench/suggest_fresh4.py --grid                                                   # grid table

`--fill` writes bench/suggest_fresh4_cache.json (`suggest.Cache`: every grid rate and seed, and each seed's range test).
"""
import functools, math, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
import suggest_tasks
from suggest_tasks import Task, Pretrained, Attn, _split, _standardize, _noisy, mlp as drop_mlp
from suggest_fresh import cli, pretrain
from suggest_fresh2 import _gen, mlp
from suggest_fresh3 import _tensors
from fastai.optimizer import Adam, SGD, RMSProp, ranger, QHAdam, RAdam, Larc, OptimWrapper

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_fresh4_cache.json')

# ---- data: (x_train, y_train, x_valid, y_valid), fixed whatever the training seed

@functools.lru_cache(None)
def hastie(n_train, n_valid=2000):
    "scikit-learn's Hastie et al. 10-D problem: class 1 when the squared norm of 10 Gaussian inputs passes 9.34"
    from sklearn.datasets import make_hastie_10_2
    x,y = make_hastie_10_2(n_train + n_valid, random_state=3101)
    return _tensors(x, (y > 0).astype(int), n_valid, 3101)

@functools.lru_cache(None)
def scurve(n_train, n_valid=1000):
    "scikit-learn's noisy 3-D S-curve; regress the position along the curve, standardized"
    from sklearn.datasets import make_s_curve
    return _tensors(*make_s_curve(n_train + n_valid, noise=0.3, random_state=3111), n_valid, 3111, std_y=True)

@functools.lru_cache(None)
def diabetes():
    "scikit-learn's bundled diabetes data (442 patients, 10 measurements, disease progression), 142 for validation"
    from sklearn.datasets import load_diabetes
    d = load_diabetes()
    return _tensors(d.data, d.target, 142, 3121, std_y=True)

@functools.lru_cache(None)
def sparse(n_train, n_valid=2000):
    "scikit-learn's sparse uncorrelated regression: 4 of 30 Gaussian inputs matter, linearly, plus noise"
    from sklearn.datasets import make_sparse_uncorrelated
    return _tensors(*make_sparse_uncorrelated(n_train + n_valid, n_features=30, random_state=3131), n_valid, 3131, std_y=True)

@functools.lru_cache(None)
def labels12(n_train, n_valid=1000):
    "scikit-learn's multi-label documents: 40 word counts, 12 labels, 3 per document on average"
    from sklearn.datasets import make_multilabel_classification
    x,y = make_multilabel_classification(n_train + n_valid, 40, n_classes=12, n_labels=3, length=60, allow_unlabeled=False,
                                         random_state=3141)
    xt,yt,xv,yv = _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), n_valid, seed=3141)
    xt,xv = _standardize(xt, xv)
    return xt,yt,xv,yv

@functools.lru_cache(None)
def firsts(n_train, n_valid=1000, length=30, channels=3, flip=0.15):
    "3-channel noisy sequences, one spike per channel at its own random step; class = the channel that spikes first; labels noisy"
    g = _gen(3151); n = n_train + n_valid
    when = torch.stack([torch.randperm(length, generator=g)[:channels] for _ in range(n)])
    x = 0.5*torch.randn(n, length, channels, generator=g)
    x[torch.arange(n)[:, None], when, torch.arange(channels)[None]] += 1 + torch.rand(n, channels, generator=g)
    xt,yt,xv,yv = _split(x, when.argmin(1), n_valid, seed=3151)
    return xt,_noisy(yt, flip, channels, seed=3152),xv,yv

TEXTURES = ((0.5, 0.5), (1.2, 1.2), (1.2, 0.5), (0.5, 1.2))   # Gaussian filter widths (rows, columns) of the 4 classes
@functools.lru_cache(None)
def textures(n_train, n_valid=1000, side=16, noise=2.0):
    "16x16 images of filtered noise: fine, coarse, or streaked along rows or columns (widths jittered), plus white noise"
    g = _gen(3161); n = n_train + n_valid
    y = torch.randint(0, len(TEXTURES), (n,), generator=g)
    widths = torch.tensor(TEXTURES)[y]*(0.7 + 0.6*torch.rand(n, 2, generator=g))
    f = torch.fft.fftfreq(side)
    gain = torch.exp(-2*math.pi**2*((f[:, None]*widths[:, 0, None, None])**2 + (f[None]*widths[:, 1, None, None])**2))
    x = torch.fft.ifft2(torch.fft.fft2(torch.randn(n, side, side, generator=g))*gain).real
    x = x/x.std((1, 2), keepdim=True) + noise*torch.randn(n, side, side, generator=g)
    return _split(x[:, None], y, n_valid, seed=3161)

NEG,VOCAB = 41,200   # tokens 1-20 are positive words, 21-40 negative ones, 41 is "not", the rest neutral
@functools.lru_cache(None)
def reviews(n_train, n_valid=2000, length=20):
    "Token sequences with 1 or 3 sentiment words, each negated by a preceding 'not' with probability 0.3; class = the majority polarity"
    g = _gen(3171); n = n_train + n_valid
    x = torch.randint(NEG+1, VOCAB, (n, length), generator=g)
    k = 1 + 2*torch.randint(0, 2, (n,), generator=g)
    polarity = torch.zeros(n)
    for i in range(n):
        for p in (2*torch.randperm(length//2, generator=g)[:k[i]] + 1).tolist():     # odd places: room for a 'not' before
            pos,neg = bool(torch.rand(1, generator=g) < 0.5),bool(torch.rand(1, generator=g) < 0.3)
            x[i, p] = int(torch.randint(1, 21, (1,), generator=g)) + (0 if pos else 20)
            if neg: x[i, p-1] = NEG
            polarity[i] += 1 if pos != neg else -1
    return _split(x, (polarity > 0).long(), n_valid, seed=3171)

MARKERS = 5
@functools.lru_cache(None)
def markers(n_train, n_valid, classes=MARKERS, seed=3181, length=16, vocab=16):
    "Token sequences (vocabulary 16) holding 2 to 4 markers (tokens below `classes`) at random places; class = the first marker"
    g = _gen(seed); n = n_train + n_valid
    x = torch.randint(classes, vocab, (n, length), generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    for i in range(n):
        places = torch.randperm(length, generator=g)[:int(torch.randint(2, 5, (1,), generator=g))].sort().values
        x[i, places] = torch.randint(0, classes, (len(places),), generator=g)
        x[i, places[0]] = y[i]
    return _split(x, y, n_valid, seed=seed)

@functools.lru_cache(None)
def blobs10(n_train, n_valid=1000, flip=0.2):
    "scikit-learn's Gaussian blobs: 10 overlapping classes in 12-D; a fraction `flip` of the training labels replaced at random"
    from sklearn.datasets import make_blobs
    xt,yt,xv,yv = _tensors(*make_blobs(n_train + n_valid, n_features=12, centers=10, cluster_std=9.0, random_state=3191), n_valid, 3191)
    return xt,_noisy(yt, flip, 10, seed=3192),xv,yv

# ---- models

class LSTMNet(nn.Module):
    "One LSTM layer read at the last step, linear head"
    def __init__(self, n_in=3, n_out=3, nh=32): super().__init__(); self.rnn,self.head = nn.LSTM(n_in, nh, batch_first=True),nn.Linear(nh, n_out)
    def forward(self, x): return self.head(self.rnn(x)[0][:, -1])

def _conv_bn(ni, no, stride=1): return [nn.Conv2d(ni, no, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(no)]

class ResBlock(nn.Module):
    "Two 3x3 conv-BatchNorm layers added to their input, then ReLU"
    def __init__(self, nf): super().__init__(); self.convs = nn.Sequential(*_conv_bn(nf, nf), nn.ReLU(), *_conv_bn(nf, nf))
    def forward(self, x): return torch.relu(x + self.convs(x))

def resnet(n_out, nf=16):
    "A small residual CNN with BatchNorm: stem, residual block, strided conv, residual block, average pooling, linear head"
    return nn.Sequential(*_conv_bn(1, nf), nn.ReLU(), ResBlock(nf), *_conv_bn(nf, 2*nf, stride=2), nn.ReLU(), ResBlock(2*nf),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2*nf, n_out))

class TextCNN(nn.Module):
    "Token embeddings, one width-3 convolution (no BatchNorm), max over time, dropout, linear head"
    def __init__(self, vocab=VOCAB, d=32, nf=64, n_out=2, drop=0.3):
        super().__init__()
        self.emb,self.conv = nn.Embedding(vocab, d),nn.Conv1d(d, nf, 3, padding=1)
        self.head = nn.Sequential(nn.Dropout(drop), nn.Linear(nf, n_out))
    def forward(self, x): return self.head(torch.relu(self.conv(self.emb(x).transpose(1, 2))).amax(2))

class AttnBody(Attn):
    "`suggest_tasks.Attn`'s embedding and self-attention block (vocabulary 16, 16 places), mean-pooled: the fine-tuning task's body"
    def __init__(self): super().__init__(16, 16, 32); self.head = nn.Identity()
    def forward(self, x): return self.block(x).mean(1)

# ---- the fine-tuning task's body: self-attention trained once to find the first of 4 markers, fine-tuned on 5

@functools.lru_cache(None)
def _markers_body():
    """Weights of `AttnBody` pretrained (`suggest_fresh.pretrain`) on 4000 sequences: which of markers 0-3 comes first.
    Its seed is none of the tasks' 0-4: under the same seed, the new head would start as the pretraining head did."""
    x,y,_,_ = markers(4000, 1, classes=4, seed=3182)
    return pretrain(lambda: Pretrained(AttnBody(), 32, 4), x, y, seed=3182),32

_prev_body = suggest_tasks._pretrained_body   # already extended by the earlier fresh sets
def _pretrained_body(kind):
    "`suggest_tasks.learner` loads a fine-tuning task's body by kind: the earlier kinds as before, plus 'markers'"
    return _markers_body() if kind == 'markers' else _prev_body(kind)
suggest_tasks._pretrained_body = _pretrained_body

# ---- the configurations, fixed before any suggestion rule was run on them

TorchAdam = functools.partial(OptimWrapper, opt=torch.optim.Adam)
Adadelta = functools.partial(OptimWrapper, opt=torch.optim.Adadelta)
SGDwd = functools.partial(SGD, mom=0.9, wd=5e-4)

FRESH4 = [
    Task('hastie_deep_narrow_sgd', lambda: hastie(12000), lambda: mlp(10, 2, nh=24, depth=6), 'ce', SGD, 64, 4, (1e-3, 10), True,
         about="scikit-learn Hastie 10-D (12000), deep narrow MLP (6 layers of 24), SGD without momentum"),
    Task('scurve_wide_mse_adam_moms', lambda: scurve(4000), lambda: mlp(3, 1, nh=1024, depth=1), 'mse', Adam, 64, 3, (1e-5, 1),
         True, moms=(0.9, 0.8, 0.9), about='scikit-learn noisy S-curve (4000), position regression, wide shallow MLP (1024), moms 0.9-0.8'),
    Task('diabetes_dropout_mse_torchadam_bs16', diabetes, lambda: drop_mlp(10, 1, drop=0.3), 'mse', TorchAdam, 16, 10, (1e-5, 1), True,
         about="scikit-learn's bundled diabetes (300, 142 to validate), MLP with dropout 0.3, torch Adam"),
    Task('sparse_mse_larc_bs512', lambda: sparse(20000), lambda: mlp(30, 1, nh=128), 'mse', Larc, 512, 4, (1e-3, 10), True,
         about='scikit-learn sparse uncorrelated regression (20000), MLP, LARS'),
    Task('labels12_dropout_bce_radam', lambda: labels12(4000), lambda: drop_mlp(40, 12, nh=256, drop=0.5), 'bce', RAdam, 32, 4,
         (1e-5, 1), True, about='scikit-learn multi-label documents (4000), 12 labels, MLP with dropout 0.5'),
    Task('firsts_lstm_rmsprop_noisy', lambda: firsts(3000), LSTMNet, 'ce', RMSProp, 32, 4, (1e-5, 1), True,
         about='synthetic 3-channel spike sequences (3000), 15% label noise, LSTM'),
    Task('textures_resnet_bn_ls_sgd_wd', lambda: textures(3000), lambda: resnet(len(TEXTURES)), 'ls', SGDwd, 128, 3, (1e-3, 10), True,
         about='synthetic texture images (3000), residual CNN with BatchNorm, label smoothing, momentum 0.9, weight decay 5e-4'),
    Task('reviews_textcnn_ranger', lambda: reviews(10000), TextCNN, 'ce', ranger, 64, 1, (1e-4, 1), True,
         about='synthetic token reviews with negation (10000), embeddings and a 1-D CNN without BatchNorm, dropout'),
    Task('finetune_markers_attn_qhadam_bs16', lambda: markers(500, 1000, seed=3183), lambda: Pretrained(AttnBody(), 32, MARKERS),
         'ce', QHAdam, 16, 3, (1e-4, 1e3), True, fine_tune='markers',
         about='synthetic marker sequences, 5 classes (500), frozen self-attention body pretrained on 4'),
    Task('blobs10_noisy_adadelta', lambda: blobs10(2500), lambda: mlp(12, 10, nh=128), 'ce', Adadelta, 32, 6, (1e-3, 1e3), True,
         about='scikit-learn Gaussian blobs, 10 classes (2500), 20% label noise, MLP, torch Adadelta'),
]

if __name__ == '__main__': cli(FRESH4, CACHE)
