# The two set-up commands: `make run` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DB ?= picorigin-data

.PHONY: run test fuzz bench install-run install-test install-bench debian-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

install-run: $(PY)
	$(PIP) install -e '.[demo,server,deep,deep-export]'
	$(PY) -m picorigin._features.deep

install-test: $(PY) debian-test
	$(PIP) install -e '.[test]'
	$(PY) -m picorigin._features.deep

install-bench: $(PY) debian-test
	$(PIP) install -e '.[bench,test]'
	$(PIP) install --no-deps 'image-match==1.1.2' 'imagededup==0.3.3.post2'
	$(PY) -m picorigin._features.deep

# Debian packages the tests need; installed only when missing (CI runs as root on a fresh machine).
DEBIAN_TEST_PACKAGES := chromium chromium-driver postgresql
debian-test:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: install-run
	$(VENV)/bin/picorigin demo --db $(DB) --out demo-images
	$(VENV)/bin/picorigin serve --db $(DB)

test: install-test
	$(PY) -m pytest -q

# Coverage-guided fuzzing of every parser entry for FUZZ_SECONDS in all; findings and inputs that
# reached new code are written to tests/fuzz/corpus/, which `make test` replays.
FUZZ_SECONDS ?= 120
fuzz: install-test
	$(PY) tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

bench: install-bench
	$(PY) bench/run.py
	$(PY) bench/load.py
	$(PY) -m bench.dedupe
	$(PY) -m bench.upscale
	$(PY) -m bench.search_latency
	$(PY) -m bench.alerts
	$(PY) -m bench.scale_out
	$(PY) -m bench.index_scale
	$(PY) -m bench.dask_bar
	$(PY) -m bench.sizing
	$(PY) -m bench.faults

clean:
	rm -rf $(VENV) $(DB) demo-images build *.egg-info
