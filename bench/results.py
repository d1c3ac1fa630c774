"Shared by the benchmarks: the run's context line, and replacing one benchmark's section of RESULTS.md."
import datetime, platform, os, re
from pathlib import Path

RESULTS = Path(__file__).parent/'RESULTS.md'

def context():
    import torch, fastai, fastcore
    return (f"{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, fastai {fastai.__version__}, fastcore {fastcore.__version__}")

def write_section(name, body):
    "Replace the section between `<!-- name -->` markers in RESULTS.md (appended if missing)"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nLatest figures; each section is rewritten by its script.\n"
    start,end = f"<!-- {name} -->",f"<!-- /{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pat = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pat.sub(lambda m: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)

def publish(name, title, description, table, write=False):
    "Print a benchmark's section (title, context, description, table) and, with `write`, put it in RESULTS.md"
    body = "\n".join([f"## {title}", "", context(), "", description, ""] + list(table))
    print(body)
    if write: write_section(name, body)

