# computeha: Instance HA for OpenStack compute nodes under Pacemaker.
#   make demo     set everything up and run the main job (see README)
#   make test     set everything up and run the whole test suite (what CI runs)
#   make install  install the agents (variables below)

PYTHON      ?= /usr/bin/python3
OCF_ROOT    ?= /usr/lib/ocf
PROVIDER    ?= computeha
SBINDIR     ?= /usr/sbin
DESTDIR     ?=
REPLACE     ?= 0
FENCE_COMPUTE_NAME ?= fence_compute
FENCE_IPMI_NAME    ?= fence_ipmi

# name=module of every agent; the module's main() is the entry point
OCF_AGENTS   = NovaEvacuate=computeha.agents.nova_evacuate NovaCompute=computeha.agents.nova_compute
FENCE_AGENTS = $(FENCE_COMPUTE_NAME)=computeha.fence.fence_compute $(FENCE_IPMI_NAME)=computeha.fence.fence_ipmi

VENV       := .venv
VPY        := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.computeha-stamp
PYTEST_ARGS ?=

OCF_DIR   = $(DESTDIR)$(OCF_ROOT)/resource.d/$(PROVIDER)
FENCE_DIR = $(DESTDIR)$(SBINDIR)

.PHONY: all setup system venv test test-unit test-contract test-faults-long demo bench install uninstall \
        rig-up rig-down update-golden update-readme clean

all: venv

# --- environment -------------------------------------------------------------------
system:
	bash tests/tools/setup-system.sh

$(VENV_STAMP): pyproject.toml
	test -x $(VPY) || python3 -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV_STAMP)

setup: system venv
	bash tests/tools/setup-rigs.sh

# --- the two README commands ---------------------------------------------------------
test: setup
	$(VPY) -m tests.tools.run_suite $(PYTEST_ARGS)

demo: setup
	$(VPY) -m tests.tools.demo

# --- narrower runs ------------------------------------------------------------------
test-unit: venv
	$(VPY) -m pytest tests/unit $(PYTEST_ARGS)

test-contract: system venv
	$(VPY) -m pytest tests/contract $(PYTEST_ARGS)

# the NovaEvacuate SIGKILL loop at full length (make test runs 3 of its seeded runs)
test-faults-long: setup
	COMPUTEHA_FAULT_KILL_RUNS=6 $(VPY) -m pytest tests/integration/test_evacuate_faults_rig.py -k sigkill_loop $(PYTEST_ARGS)

bench: setup
	bash tests/bench/setup_fence_compute_reference.sh
	$(VPY) -m tests.bench.run_all $(BENCH)

rig-up: setup
	bash tests/rig/openstack/up.sh
	bash tests/rig/cluster/up.sh

rig-down:
	bash tests/rig/cluster/down.sh
	bash tests/rig/openstack/down.sh

update-golden: venv
	COMPUTEHA_UPDATE_GOLDEN=1 $(VPY) -m pytest -q tests/unit -k golden

update-readme: venv
	$(VPY) -m tests.tools.readme --update

# --- installation -------------------------------------------------------------------
# The installer itself runs from this checkout; it checks that $(PYTHON) can import every agent.
INSTALLER = python3 -c 'import sys; sys.path.insert(0, "ocf_lib"); import install; sys.exit(install.main())'
SYS_PATH ?=

install:
	$(INSTALLER) install --python $(PYTHON) --replace $(REPLACE) $(if $(SYS_PATH),--sys-path $(SYS_PATH)) \
	  $(foreach a,$(OCF_AGENTS),$(OCF_DIR)/$(a)) $(foreach a,$(FENCE_AGENTS),$(FENCE_DIR)/$(a))

uninstall:
	$(INSTALLER) uninstall \
	  $(foreach a,$(OCF_AGENTS),$(OCF_DIR)/$(firstword $(subst =, ,$(a)))) \
	  $(foreach a,$(FENCE_AGENTS),$(FENCE_DIR)/$(firstword $(subst =, ,$(a))))

clean:
	rm -rf build dist *.egg-info .pytest_cache
