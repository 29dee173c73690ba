# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo
DEMO_PARTICIPANTS ?= 12
NPROCS ?= 2

.PHONY: install demo test check lint bench slow clean

$(BIN)/hermesflow: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/hermesflow

demo: install
	rm -rf $(DEMO)/bids $(DEMO)/out
	$(BIN)/hermesflow simulate $(DEMO)/bids --participants $(DEMO_PARTICIPANTS) --seed 1 --nprocs $(NPROCS)
	$(BIN)/hermesflow $(DEMO)/bids $(DEMO)/out participant -w $(DEMO)/work --nprocs $(NPROCS)
	$(BIN)/hermesflow $(DEMO)/bids $(DEMO)/out group -w $(DEMO)/work --nprocs $(NPROCS)
	@echo
	@echo "Demo done. Group tables:  $(DEMO)/out/group/"
	@ls $(DEMO)/out/group/
	@echo "Group report:             $(DEMO)/out/group/task-passivewrist_atlas-juelich_desc-report.html"
	@echo "Ground truth:             $(DEMO)/bids/derivatives/simulation/"

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -n $(NPROCS) --dist loadfile --durations=15

# The whole suite as CI runs it, 0 skipped: installs podman, SLURM and Chromium (apt-get, as
# root), starts them, runs `make test`, stops them.
check:
	.ci/run

slow: install
	$(BIN)/python -m pytest -m slow -rP

# One table of figures and goals; `make bench QUICK=1` for small sizes (a few minutes).
bench: install
	$(BIN)/python bench/run.py $(if $(QUICK),--quick)

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
