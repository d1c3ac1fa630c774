# The two commands of the quick start: `make demo` and `make test`. Each creates what it needs on first
# use, from pinned versions, and reuses it later:
#   .venv-boot  pip-installed uv, which builds the two environments below (hard-linked from its cache)
#   .venv       the runtime users get (fastai 2.8.12, requirements/runtime.txt) + this package, editable
#   .tools      nbdev 2.4.14, which needs fastcore 1.x and so fastai 2.8.7 (requirements/tools.txt)
PYTHON ?= python3
UV := .venv-boot/bin/uv
# uv compiles bytecode at install: with PYTHONDONTWRITEBYTECODE set, fastai would otherwise compile on every import.
export UV_COMPILE_BYTECODE := 1
export MPLBACKEND := Agg

.PHONY: demo test bench envs readme

demo: .venv/.ok
	.venv/bin/onecycle-demo $(ARGS)

test: .venv/.ok .tools/.ok
	.tools/bin/python tests/check_nbs.py
	.tools/bin/nbdev_test --path nbs --n_workers 2
	.venv/bin/python -m pytest -q tests

bench: .venv/.ok
	.venv/bin/python -m bench $(ARGS)

envs: .venv/.ok .tools/.ok

$(UV):
	$(PYTHON) -m venv .venv-boot
	.venv-boot/bin/pip install -q uv==0.13.9

# An environment $(1) from the lock file $(2), with this package installed editable.
define make_env
	rm -rf $(1)
	$(UV) venv -q -p $(PYTHON) $(1)
	$(UV) pip install -q -p $(1)/bin/python -r $(2)
	$(UV) pip install -q -p $(1)/bin/python --no-deps -e .
	touch $(1)/.ok
endef

.venv/.ok: requirements/runtime.txt setup.py settings.ini | $(UV)
	$(call make_env,.venv,requirements/runtime.txt)

.tools/.ok: requirements/tools.txt setup.py settings.ini | $(UV)
	$(call make_env,.tools,requirements/tools.txt)

# README.md is made from nbs/index.ipynb (quarto, which nbdev_readme needs, cannot be installed here).
readme: .tools/.ok
	.tools/bin/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README \
		--RegexRemovePreprocessor.patterns="['^#\| *hide']"
	sed -i 's|](images/|](nbs/images/|g' README.md  # the notebook's images, seen from the repository root
