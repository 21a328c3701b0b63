# Build and test entry points; each target says what it runs. Works from any directory
# (make -C path/to/clone TARGET) and is safe to repeat. Run as root: Postgres is the system's.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
# The server to build and package for (make package PG_CONFIG=/path/to/18/bin/pg_config).
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
# Install scripts of earlier releases (sql/pg_oidc_authz--X.sql, kept as pgrx generated them):
# cargo pgrx install copies only this version's and the upgrade scripts (…--X--Y.sql).
OLD_INSTALL_SCRIPTS := $(filter-out $(wildcard $(ROOT)/sql/pg_oidc_authz--*--*.sql),$(wildcard $(ROOT)/sql/pg_oidc_authz--*.sql))
# Test clusters of `cargo pgrx test --runas postgres` go here (a directory postgres can write).
PGTEST_DATA := /tmp/pg_oidc_authz/pgtest-data
MAKEFLAGS += --no-print-directory

.PHONY: setup install cluster-start cluster-stop test lint unit pgtest regress regress-update e2e package package-test demo bench equivalence differential fuzz

setup:
	"$(ROOT)"/scripts/setup.sh

# The throwaway cluster preloads the library: it is stopped first (a running server would
# crash on a library replaced under it) and started again by whatever needs it.
install:
	"$(ROOT)"/scripts/cluster.sh stop
	cd "$(ROOT)" && cargo pgrx install --release --pg-config $(PG_CONFIG)
	install -m 0644 $(OLD_INSTALL_SCRIPTS) "$$($(PG_CONFIG) --sharedir)/extension/"

cluster-start:
	"$(ROOT)"/scripts/cluster.sh start

cluster-stop:
	"$(ROOT)"/scripts/cluster.sh stop

# Stops at the first failing tier; the cluster is stopped whatever happens.
test:
	@trap '$(MAKE) cluster-stop' EXIT; \
	for tier in setup lint unit pgtest install regress e2e package package-test; do \
		echo "==> make $$tier"; \
		$(MAKE) $$tier; \
	done; \
	echo "==> all test tiers passed"

lint:
	cd "$(ROOT)" && cargo fmt --all --check
	cd "$(ROOT)" && cargo clippy --workspace --all-targets -- -D warnings

unit:
	cd "$(ROOT)" && cargo test -p oidc_authz_core

# --runas: pgrx runs mkdir/initdb/pg_ctl as `sudo -u postgres` (PGDATA becomes PGTEST_DATA/15-<pid>,
# so postgres must be able to write PGTEST_DATA) and copies the extension files into the system
# directories with `sudo cp` as root. Nothing under target/ is read by postgres, and an
# unreadable working directory (a clone under /root) only makes pg_ctl warn, so the clone's
# permissions need no change.
pgtest:
	"$(ROOT)"/scripts/cluster.sh prepare
	install -d -o postgres -g postgres $(PGTEST_DATA)
	cd "$(ROOT)" && cargo pgrx test pg15 --runas postgres --pgdata $(PGTEST_DATA)

regress:
	"$(ROOT)"/scripts/regress.sh

regress-update:
	REGRESS_UPDATE=1 "$(ROOT)"/scripts/regress.sh

e2e:
	"$(ROOT)"/scripts/e2e.sh

# A Debian package for PG_CONFIG's major: target/package/postgresql-NN-pg-oidc-authz_<version>_<arch>.deb
# (library, control file, every install and upgrade script, README, copyright). Installs nothing.
package:
	"$(ROOT)"/scripts/package.sh $(PG_CONFIG)

# The package's control fields and files, and an install of it into a scratch copy of the
# server (never the system's directories) used with CREATE EXTENSION, no Rust in the PATH.
package-test:
	"$(ROOT)"/scripts/package-test.sh $(PG_CONFIG)

# Sequential on purpose: prerequisites could run in parallel under make -j.
demo:
	$(MAKE) setup
	$(MAKE) install
	$(MAKE) cluster-start
	"$(ROOT)"/examples/demo.sh

# Per-row cost of the claim functions and rules as ratios to a baseline in the same run, and
# the load time of large configurations (not a test).
bench:
	$(MAKE) setup
	$(MAKE) install
	$(MAKE) cluster-start
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/claims.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/rules.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/residual.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/load.py

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
