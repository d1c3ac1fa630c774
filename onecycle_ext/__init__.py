__version__ = "0.1.0"
"Learning-rate and momentum schedules for fastai: the 1cycle policy in every form, partial cycles, an LR finder that leaves no trace, and plots."
# Importing the modules applies the patches on `Learner` and `Recorder`.
from .annealing import *
from .scheduler import *
from .fit import *
from .saving import *
from .process import *
from .resume import *
from .lr_finder import *
from .plots import *
try: import accelerate  # fastai's DDP (`distrib_ctx`) needs Accelerate; without it there is nothing to adapt
except ImportError: pass
else: from .distributed import *
