# The two commands the README opens with:
#   make study   set up (once) and run the whole study on the embedded campus dataset
#   make test    set up (once) and run the unit tests, then the notebooks in the smoke profile (papermill + nbval)
# Both create the virtual environment $(VENV) when missing and reuse it afterwards.

VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default

.PHONY: study test unit notebooks lint venv clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

study: venv
	$(PY) -m streid_lib reproduce --profile $(PROFILE)

test: venv lint unit notebooks

lint: venv
	$(VENV)/bin/ruff check streid_lib tests benchmarks
	$(VENV)/bin/ruff format --check streid_lib tests benchmarks

unit: venv
	# one BLAS/OpenMP thread per worker: two workers on two cores, no oversubscription
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 tests

notebooks: venv
	CI=true $(PY) -m streid_lib reproduce --profile smoke --out runs/smoke
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider runs/smoke/notebooks

clean:
	rm -rf $(VENV) runs
