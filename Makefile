# The two commands the README opens with:
#   make study   set up (once) and run the whole study on the embedded campus dataset
#   make test    set up (once) and run the unit tests, then the notebooks in the smoke profile (papermill; nbval on the campus),
#                on the campus and on the real DukeMTMC-reID development features when ../shared holds them
# Both create the virtual environment $(VENV) when missing and reuse it afterwards.
#   make study-real   the whole study on the real development features (figures/duke-duke_mobilenetv2/)

VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
# Real DukeMTMC-reID features (ImageNet MobileNetV2) beside the repository; never copied into it.
DEV_FEATURES ?= ../shared/data/features/duke_mobilenetv2.npz

.PHONY: study study-real test unit base-install notebooks notebooks-real lint venv clean check-reproducible

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,study,dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

study: venv
	$(PY) -m streid_lib reproduce --profile $(PROFILE)
	$(PY) -m streid_lib.study.readme

study-real: venv
	@test -f $(DEV_FEATURES) || { echo "study-real: $(DEV_FEATURES) not found (../shared is absent)"; exit 1; }
	$(PY) -m streid_lib reproduce --profile $(PROFILE) -p dataset duke -p features $(abspath $(DEV_FEATURES))
	$(PY) -m streid_lib.study.readme

# The unit tests use both cores (-n 2); then the base install and the two notebook runs (campus, real features)
# share them side by side, one thread each (no oversubscription), each run's output printed in one block when it ends.
test: venv lint unit
	OMP_NUM_THREADS=1 $(MAKE) --no-print-directory -j3 --output-sync=target base-install notebooks notebooks-real

# The trained rows and the verdicts on this CPU and a simulated baseline x86-64 CPU (slow: trains the profile's CNNs twice; not in make test).
check-reproducible: venv
	$(PY) benchmarks/check_reproducible.py --profile $(PROFILE)

lint: venv
	$(VENV)/bin/ruff check streid_lib tests benchmarks notebooks
	$(VENV)/bin/ruff format --check streid_lib tests benchmarks notebooks

unit: venv
	# one BLAS/OpenMP thread per worker: two workers on two cores, no oversubscription
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 tests

# The base package alone (no torch, no notebooks) in a fresh venv under build/, then evaluate from it.
BASE_VENV := build/base-venv
base-install:
	rm -rf $(BASE_VENV) && python3 -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt .
	cd build && ../$(BASE_VENV)/bin/python ../tests/base_install_check.py

notebooks: venv
	CI=true $(PY) -m streid_lib reproduce --profile smoke --out runs/smoke
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider runs/smoke/notebooks
	STREID_EXECUTED=runs/smoke/notebooks $(PY) -m pytest -q -p no:cacheprovider tests/notebook_checks.py

# Route c on real data: all notebooks on one features file with its own training side (smoke profile), then the
# checks of the executed copies. nbval (a second execution compared output for output) runs on the campus run only:
# on these features it would double the longest step of make test.
notebooks-real: venv
	@if [ -f $(DEV_FEATURES) ]; then \
	  CI=true $(PY) -m streid_lib reproduce --profile smoke --out runs/smoke-duke \
	    -p dataset duke -p features $(abspath $(DEV_FEATURES)) && \
	  STREID_EXECUTED=runs/smoke-duke/notebooks $(PY) -m pytest -q -p no:cacheprovider tests/notebook_checks.py; \
	else \
	  echo "notebooks-real: SKIPPED: $(DEV_FEATURES) not found (../shared is absent): no notebook ran on real data"; \
	fi

clean:
	rm -rf $(VENV) runs
